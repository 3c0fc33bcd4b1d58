"""Image corruptions for the OOD stage, as batched tensor ops on whatever device the batch is on.

Every corruption has the signature ``fn(x255, value, seeds) -> Tensor``: ``x255`` is a float
batch ``[B, C, H, W]`` on the 0..255 scale (model input resolution), ``value`` the severity
parameter and ``seeds`` one int64 seed per image. The result has the same shape, dtype and device,
and holds integers in 0..255: a valid 8-bit image, like the PIL pipelines it reproduces.

The input is first rounded and clamped to 8 bits (``quantize_8bit``): the corruptions act on the
8-bit image a PIL pipeline would hold, which is what makes the PIL-exact ones exact.

Randomness (noise only) comes from a counter-based hash, not from a stateful generator: every
pixel's normal draw is a pure function of (image seed, pixel index), computed with int64 tensor
ops whose intermediate products stay below 2**62 (no overflow, so no platform-dependent wrap).
An image therefore gets the same noise alone or in any batch, in any position, on CPU or CUDA
(the Box-Muller transform runs in float64, so CPU/CUDA can differ only if a value lands within
~1e-12 of a rounding boundary). Blur and contrast are deterministic and ignore their seeds.

Presets (`core.robustness.presets`): ``reference`` (the reference experiment: PIL GaussianBlur / ImageEnhance.Contrast, noise on the
0..255 scale) and ``imagenet_c`` (Hendrycks & Dietterich 2019, formulas of their
``make_imagenet_c.py`` on the 0..1 scale).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch

from xai_kedro.core.common.registry import Registry

logger = logging.getLogger(__name__)

CorruptionFn = Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor]
CORRUPTIONS: Registry[CorruptionFn] = Registry("corruption fn", setting="ood.corruptions[].fn")


def register_corruption(name: str) -> Callable[[CorruptionFn], CorruptionFn]:
    """Declare a corruption ``fn(x255, value, seeds)``; presets and config entries name it."""
    return CORRUPTIONS.register(name)


PIXEL_MAX = 255
PIL_BLUR_PASSES = 3  # Pillow's ImagingGaussianBlur: three extended box passes per axis
PIL_FIXED_POINT_BITS = 24  # Pillow's box blur weights are 8.24 fixed point
PIL_LUMA_WEIGHTS_Q16 = (19595, 38470, 7471)  # Convert.c L24: ITU-R 601-2 luma in 16.16
SKIMAGE_TRUNCATE = 4.0  # skimage.filters.gaussian / scipy.ndimage default kernel extent (sigmas)

_MASK32 = 0xFFFFFFFF
_KEY_SALT = 0x9E3779B9  # golden-ratio constant: separates the two per-image hash keys


# ----------------------------------------------------------------------------------------------
# shared helpers
# ----------------------------------------------------------------------------------------------
def quantize_8bit(x255: torch.Tensor) -> torch.Tensor:
    """Round and clamp to the 8-bit grid (float32), the image a PIL pipeline would hold."""
    return x255.float().round().clamp_(0, PIXEL_MAX)


def _check_inputs(x255: torch.Tensor, seeds: torch.Tensor, value: float, name: str) -> None:
    """Fail early with a clear message on malformed batches or parameters."""
    if not isinstance(x255, torch.Tensor) or x255.ndim != 4:
        shape = tuple(x255.shape) if isinstance(x255, torch.Tensor) else type(x255).__name__
        raise ValueError(f"{name}: x255 must be a [B, C, H, W] tensor, got {shape}")
    if not x255.is_floating_point():
        raise TypeError(
            f"{name}: x255 must be a float tensor on the 0..255 scale, got {x255.dtype}"
        )
    if not isinstance(seeds, torch.Tensor) or seeds.ndim != 1 or seeds.shape[0] != x255.shape[0]:
        got = tuple(seeds.shape) if isinstance(seeds, torch.Tensor) else type(seeds).__name__
        raise ValueError(
            f"{name}: seeds must be a 1-D tensor of length B={x255.shape[0]}, got {got}"
        )
    if seeds.is_floating_point() or seeds.dtype == torch.bool:
        raise TypeError(f"{name}: seeds must be an integer tensor, got {seeds.dtype}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: value must be a finite number, got {value!r}")


def _check_non_negative(value: float, name: str, param: str) -> None:
    if value < 0:
        raise ValueError(f"{name}: {param} must be >= 0, got {value}")


def _to_8bit(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Clamp to 0..255, round half to even, and return in the caller's dtype."""
    return y.clamp(0, PIXEL_MAX).round().to(like.dtype)


# ----------------------------------------------------------------------------------------------
# counter-based normal RNG
# ----------------------------------------------------------------------------------------------
def _pcg_hash(v: torch.Tensor) -> torch.Tensor:
    """PCG-RXS-M-XS 32-bit hash (Jarzynski & Olano 2020) on int64 tensors holding uint32 values.

    All constants are < 2**32 and multipliers < 2**30, so products stay < 2**62: exact int64
    arithmetic on every device, no overflow. The map is a bijection of 0..2**32-1.
    """
    state = (v * 747796405 + 2891336453) & _MASK32
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _MASK32
    return (word >> 22) ^ word


def _seed_keys(seeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 32-bit keys per image from its 64-bit seed (both halves are mixed in)."""
    s = seeds.to(torch.int64)
    lo, hi = s & _MASK32, (s >> 32) & _MASK32
    k1 = _pcg_hash(_pcg_hash(lo) ^ hi)
    k2 = _pcg_hash(k1 ^ _KEY_SALT)
    return k1, k2


def hash_normal(
    seeds: torch.Tensor, shape: Sequence[int], device: torch.device | str
) -> torch.Tensor:
    """Standard normal draws [B, *shape] (float64), a pure function of (seed, element index).

    Element n of image b uses uniforms hashed from counters 2n and 2n+1 keyed by the image's seed,
    then the Box-Muller transform (cosine branch). Independent of batch size and order.
    """
    numel = math.prod(shape)
    if 2 * numel > _MASK32:
        raise ValueError(f"hash_normal: {numel} elements per image exceed the 32-bit counter space")
    k1, k2 = _seed_keys(seeds.to(device))
    k1, k2 = k1.view(-1, 1), k2.view(-1, 1)
    counter = torch.arange(numel, device=device, dtype=torch.int64) * 2
    c1, c2 = _pcg_hash(counter).view(1, -1), _pcg_hash(counter + 1).view(1, -1)
    h1 = _pcg_hash(_pcg_hash(c1 ^ k1) ^ k2)
    h2 = _pcg_hash(_pcg_hash(c2 ^ k1) ^ k2)
    scale = 1.0 / 2.0**32
    u1 = (h1.double() + 0.5) * scale  # (0, 1): log is finite
    u2 = h2.double() * scale
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
    return z.view(-1, *shape)


def _noisy(x255: torch.Tensor, sigma255: float, seeds: torch.Tensor) -> torch.Tensor:
    """quantised image + N(0, sigma255**2), clamped and rounded (float64 math)."""
    q = quantize_8bit(x255).double()
    z = hash_normal(seeds, q.shape[1:], q.device)
    return _to_8bit(q + sigma255 * z, x255)


# ----------------------------------------------------------------------------------------------
# reference preset (the reference experiment, PIL semantics)
# ----------------------------------------------------------------------------------------------
@register_corruption("gaussian_noise")
def gaussian_noise(x255: torch.Tensor, sigma: float, seeds: torch.Tensor) -> torch.Tensor:
    """Additive Gaussian noise N(0, sigma**2) on the 0..255 scale, clamped and rounded.

    Seeded per image through ``hash_normal`` (same output alone or in any batch).
    """
    _check_inputs(x255, seeds, sigma, "gaussian_noise")
    _check_non_negative(sigma, "gaussian_noise", "sigma")
    return _noisy(x255, float(sigma), seeds)


def pil_box_radius(radius: float, passes: int = PIL_BLUR_PASSES) -> float:
    """Pillow's ``_gaussian_blur_radius`` (BoxBlur.c), with its float32/double arithmetic.

    Extended box radius whose ``passes``-fold box blur has variance radius**2 (Gwosdek et al. 2011).
    """
    f32 = np.float32
    sigma2 = f32(radius) * f32(radius) / f32(passes)
    big_l = f32(math.sqrt(12.0 * float(sigma2) + 1.0))
    small_l = f32(math.floor((float(big_l) - 1.0) / 2.0))
    a = (f32(2) * small_l + f32(1)) * (small_l * (small_l + f32(1)) - f32(3) * sigma2)
    a = a / (f32(6) * (sigma2 - (small_l + f32(1)) * (small_l + f32(1))))
    return float(small_l + a)


def _pil_box_weights(box_radius: float) -> tuple[int, int, int]:
    """(integer radius, inner weight, far weight) exactly as ImagingHorizontalBoxBlur computes them."""
    r = int(box_radius)
    one = 1 << PIL_FIXED_POINT_BITS
    ww = int(np.float32(one) / (np.float32(box_radius) * np.float32(2) + np.float32(1)))
    fw = (one - (2 * r + 1) * ww) // 2
    return r, ww, fw


def _pil_box_pass(q: torch.Tensor, dim: int, r: int, ww: int, fw: int) -> torch.Tensor:
    """One extended box pass of Pillow along ``dim`` on int64 pixels, edges replicated.

    out[i] = round((ww * sum(q[i-r..i+r]) + fw * (q[i-r-1] + q[i+r+1])) / 2**24), the window
    sum coming from a cumulative sum, so the cost does not depend on the radius.
    """
    n = q.shape[dim]
    idx = torch.arange(-(r + 1), n + r + 1, device=q.device).clamp_(0, n - 1)
    padded = q.index_select(dim, idx)  # length n + 2r + 2
    csum = torch.cumsum(padded, dim)
    window = csum.narrow(dim, 2 * r + 1, n) - csum.narrow(dim, 0, n)
    far = padded.narrow(dim, 0, n) + padded.narrow(dim, 2 * r + 2, n)
    half = 1 << (PIL_FIXED_POINT_BITS - 1)
    return (window * ww + far * fw + half) >> PIL_FIXED_POINT_BITS


@register_corruption("gaussian_blur")
def gaussian_blur(x255: torch.Tensor, radius: float, seeds: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageFilter.GaussianBlur(radius)``, bit-exact on the 8-bit image.

    Pillow does not convolve with a Gaussian: it runs 3 horizontal then 3 vertical *extended box*
    passes (box radius from ``pil_box_radius``), in 8.24 fixed point, rounding to uint8 after
    every pass, with replicated edges. This is that algorithm in exact int64 tensor ops
    (cumulative sums), so it matches Pillow 13 with max abs diff 0 (tests: random, structured and
    natural images, radius 1/3/6). Seeds are ignored.
    """
    _check_inputs(x255, seeds, radius, "gaussian_blur")
    _check_non_negative(radius, "gaussian_blur", "radius")
    if radius == 0:
        return quantize_8bit(x255).to(x255.dtype)
    r, ww, fw = _pil_box_weights(pil_box_radius(radius))
    q = quantize_8bit(x255).to(torch.int64)
    for dim in (-1, -2):  # Pillow: all horizontal passes, then all vertical ones
        for _ in range(PIL_BLUR_PASSES):
            q = _pil_box_pass(q, dim, r, ww, fw)
    return q.to(x255.dtype)


@register_corruption("contrast")
def contrast(x255: torch.Tensor, factor: float, seeds: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageEnhance.Contrast(img).enhance(factor)``, bit-exact on x86-64.

    degenerate = int(mean(L) + 0.5) with L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16
    (Pillow's RGB->L); output = ImagingBlend(degenerate, img, factor): float32
    ``deg + factor * (img - deg)``, truncated toward zero and clipped to 0..255. Seeds are ignored.
    """
    _check_inputs(x255, seeds, factor, "contrast")
    if x255.shape[1] != 3:
        raise ValueError(f"contrast: needs RGB images [B, 3, H, W], got {x255.shape[1]} channels")
    q = quantize_8bit(x255).to(torch.int64)
    wr, wg, wb = PIL_LUMA_WEIGHTS_Q16
    luma = (q[:, 0] * wr + q[:, 1] * wg + q[:, 2] * wb + (1 << 15)) >> 16
    total = luma.sum(dim=(1, 2))
    count = luma.shape[1] * luma.shape[2]
    mean = (2 * total + count) // (2 * count)  # int(total / count + 0.5), exactly
    deg = mean.to(torch.float32).view(-1, 1, 1, 1)
    alpha = torch.tensor(factor, dtype=torch.float32, device=x255.device)
    blended = deg + alpha * (q.to(torch.float32) - deg)  # two float32 roundings, as in C
    return torch.trunc(blended).clamp_(0, PIXEL_MAX).to(x255.dtype)


# ----------------------------------------------------------------------------------------------
# ImageNet-C preset (Hendrycks & Dietterich 2019, make_imagenet_c.py), 0..1 scale
# ----------------------------------------------------------------------------------------------
@register_corruption("imagenet_c_gaussian_noise")
def imagenet_c_gaussian_noise(x255: torch.Tensor, c: float, seeds: torch.Tensor) -> torch.Tensor:
    """ImageNet-C ``gaussian_noise``: ``clip(x/255 + N(0, c), 0, 1) * 255``.

    c in [.08, .12, .18, .26, .38]. Rounded (their script truncates with np.uint8, then JPEG).
    """
    _check_inputs(x255, seeds, c, "imagenet_c_gaussian_noise")
    _check_non_negative(c, "imagenet_c_gaussian_noise", "c")
    q = quantize_8bit(x255).double() / PIXEL_MAX
    z = hash_normal(seeds, q.shape[1:], q.device)
    return _to_8bit((q + float(c) * z).clamp(0.0, 1.0) * PIXEL_MAX, x255)


def gaussian_kernel1d(sigma: float, truncate: float = SKIMAGE_TRUNCATE) -> torch.Tensor:
    """scipy.ndimage's normalised Gaussian taps (float64), radius int(truncate * sigma + 0.5)."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 / (sigma * sigma) * t * t)
    return k / k.sum()


def _correlate_nearest(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D correlation along ``dim`` with edge replication (scipy mode='nearest').

    A fixed-order sum of shifted slices: deterministic and batch-independent on every device.
    """
    n, radius = x.shape[dim], (kernel.numel() - 1) // 2
    idx = torch.arange(-radius, n + radius, device=x.device).clamp_(0, n - 1)
    padded = x.index_select(dim, idx)
    out = torch.zeros_like(x)
    for k, w in enumerate(kernel.tolist()):
        out += w * padded.narrow(dim, k, n)
    return out


@register_corruption("imagenet_c_gaussian_blur")
def imagenet_c_gaussian_blur(x255: torch.Tensor, c: float, seeds: torch.Tensor) -> torch.Tensor:
    """ImageNet-C ``gaussian_blur``: ``clip(skimage.filters.gaussian(x/255, sigma=c,
    multichannel=True), 0, 1) * 255``.

    skimage delegates to scipy.ndimage.gaussian_filter(mode='nearest', truncate=4) over H and W
    only; this is the same separable float64 filter (≤ 1 level from SciPy, see tests).
    c in [1, 2, 3, 4, 6]. Seeds are ignored.
    """
    _check_inputs(x255, seeds, c, "imagenet_c_gaussian_blur")
    _check_non_negative(c, "imagenet_c_gaussian_blur", "c")
    q = quantize_8bit(x255).double() / PIXEL_MAX
    if c > 0:
        kernel = gaussian_kernel1d(float(c))
        q = _correlate_nearest(_correlate_nearest(q, kernel, -2), kernel, -1)
    return _to_8bit(q.clamp(0.0, 1.0) * PIXEL_MAX, x255)


@register_corruption("imagenet_c_contrast")
def imagenet_c_contrast(x255: torch.Tensor, c: float, seeds: torch.Tensor) -> torch.Tensor:
    """ImageNet-C ``contrast``: ``clip((x - means) * c + means, 0, 1) * 255`` on x/255, where
    means = np.mean(x, axis=(0, 1)) is the per-channel mean over H and W.

    c in [.4, .3, .2, .1, .05]. Seeds are ignored.
    """
    _check_inputs(x255, seeds, c, "imagenet_c_contrast")
    q = quantize_8bit(x255).double() / PIXEL_MAX
    means = q.mean(dim=(2, 3), keepdim=True)
    return _to_8bit(((q - means) * float(c) + means).clamp(0.0, 1.0) * PIXEL_MAX, x255)
