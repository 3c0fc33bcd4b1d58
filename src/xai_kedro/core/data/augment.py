"""Batched image augmentation in plain torch ops (torchvision does not import beside this torch).

Everything works on a whole batch `[B, 3, H, W]` on the 0..255 scale, on CPU or GPU, so the
training loop never does per-image Python work. Random draws come from a CPU `torch.Generator`
and are then moved to the batch's device: the same seed gives the same augmentation on CPU
and CUDA. `eval_view` applies the deterministic counterpart of the training geometry (centre
crop + resize) so that training and inference see objects at the same scale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from xai_kedro.core.common.settings import Settings

ROTATION_FILLS = ("mean", "border")
MAX_BLUR_SIGMA = 16.0
_LATER_DEFAULTS = {"blur_sigma": 0.0, "noise_std": 0.0, "cutout": 0.0}  # added after cache keys
_FLOAT_FIELDS = (
    "rotation_deg",
    "hflip_p",
    "brightness",
    "contrast",
    "blur_sigma",
    "noise_std",
    "cutout",
)


@dataclass(frozen=True)
class AugmentConfig(Settings):
    """Training-time augmentation; all zeros/None means no augmentation (pure resize).

    rotation_deg: angle drawn uniformly in [-deg, deg] per image.
    hflip_p: probability of a horizontal flip.
    brightness / contrast: factor drawn uniformly in [1 - j, 1 + j] (torchvision semantics:
        brightness scales pixel values, contrast blends with the image's mean grey level).
    crop_size: random square crop of this size from the stored image, then resize to the model
        input size (the reference experiment: 224 from 256); `None` keeps the whole image.
    rotation_fill: what the corners uncovered by a rotation show: "mean" (the image's per-channel
        mean, carries no shape information) or "border" (replicated edge pixels).
    blur_sigma: Gaussian blur whose sigma (pixels of the model input) is drawn uniformly in
        [0, blur_sigma] per image: robustness to blur-like shifts is learned, not hoped for.
    noise_std: additive Gaussian pixel noise whose std (0..255 scale) is drawn uniformly in
        [0, noise_std] per image.
    cutout: one square per image, of side `cutout` x the input side, at a random place,
        painted one random colour: the model cannot rely on any single region (background
        included).
    The three are applied after the colour jitter, in that order; at 0 they draw no random
    numbers, so a config without them augments exactly as before they existed.
    """

    PATH = "adapter_training.zoo.defaults.augmentation"

    rotation_deg: float = 0.0
    hflip_p: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    crop_size: int | None = None
    rotation_fill: str = "mean"
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    cutout: float = 0.0

    def __post_init__(self) -> None:
        if self.rotation_deg < 0 or self.rotation_deg > 180:
            raise ValueError(f"rotation_deg must be in [0, 180], got {self.rotation_deg}")
        if not 0.0 <= self.hflip_p <= 1.0:
            raise ValueError(f"hflip_p must be a probability in [0, 1], got {self.hflip_p}")
        for name in ("brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} jitter must be in [0, 1), got {value}")
        if not 0.0 <= self.blur_sigma <= MAX_BLUR_SIGMA:
            raise ValueError(f"blur_sigma must be in [0, {MAX_BLUR_SIGMA}], got {self.blur_sigma}")
        if not 0.0 <= self.noise_std <= 255.0:
            raise ValueError(f"noise_std must be in [0, 255] (pixel scale), got {self.noise_std}")
        if not 0.0 <= self.cutout < 1.0:
            raise ValueError(f"cutout must be a fraction of the side in [0, 1), got {self.cutout}")
        if self.crop_size is not None and int(self.crop_size) < 1:
            raise ValueError(f"crop_size must be a positive int or None, got {self.crop_size}")
        if self.rotation_fill not in ROTATION_FILLS:
            raise ValueError(
                f"rotation_fill must be one of {ROTATION_FILLS}, got {self.rotation_fill!r}"
            )

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any] | AugmentConfig | None = None, path: str = ""
    ) -> AugmentConfig:
        """Build from parameters (a typo must not silently disable augmentation); numbers are
        coerced (YAML's `15` is the angle 15.0, "224" the crop 224) so equal settings hash equal."""
        if isinstance(params, Mapping):
            params = dict(params)
            for name in _FLOAT_FIELDS:
                if name in params:
                    params[name] = float(params[name])
            if params.get("crop_size") is not None:
                params["crop_size"] = int(params["crop_size"])
        return super().from_params(params, path)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cache_key_dict(self) -> dict[str, Any]:
        """`to_dict` without the fields added later (blur_sigma, noise_std, cutout) where they
        are off: what cache keys hash, so models trained before those fields existed keep
        their keys (an adapter's `config_hash`, the pre-trained backbone's fingerprint)."""
        out = self.to_dict()
        for name, default in _LATER_DEFAULTS.items():
            if out[name] == default:
                del out[name]
        return out

    @property
    def is_identity(self) -> bool:
        """True when training images only get resized (no random transform at all)."""
        return (
            self.rotation_deg == 0
            and self.hflip_p == 0
            and self.brightness == 0
            and self.contrast == 0
            and self.crop_size is None
            and self.blur_sigma == 0
            and self.noise_std == 0
            and self.cutout == 0
        )


def hwc_to_chw(images: torch.Tensor) -> torch.Tensor:
    """uint8 `[B, H, W, 3]` (the Bronze layout) -> float `[B, 3, H, W]` on the 0..255 scale."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Expected [B, H, W, 3] images, got shape {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float()


def _check_batch(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"Expected [B, 3, H, W] images, got shape {tuple(x.shape)}")
    return x.float()


def _check_crop(x: torch.Tensor, crop_size: int) -> None:
    height, width = x.shape[-2:]
    if crop_size > height or crop_size > width:
        raise ValueError(
            f"crop_size {crop_size} is larger than the stored images ({height}x{width})"
        )


def resize(x: torch.Tensor, out_size: int) -> torch.Tensor:
    """Antialiased bilinear resize to a square size (same filter as `preprocessing`)."""
    if x.shape[-2] == out_size and x.shape[-1] == out_size:
        return x
    return F.interpolate(
        x, size=(out_size, out_size), mode="bilinear", antialias=True, align_corners=False
    )


def centre_crop(x: torch.Tensor, crop_size: int) -> torch.Tensor:
    _check_crop(x, crop_size)
    top = (x.shape[-2] - crop_size) // 2
    left = (x.shape[-1] - crop_size) // 2
    return x[..., top : top + crop_size, left : left + crop_size]


def eval_view(x: torch.Tensor, crop_size: int | None, out_size: int) -> torch.Tensor:
    """Deterministic inference geometry: centre crop (if set) then resize; float 0..255."""
    x = _check_batch(x)
    if crop_size is not None:
        x = centre_crop(x, int(crop_size))
    return resize(x, out_size)


def random_crop(x: torch.Tensor, crop_size: int, generator: torch.Generator) -> torch.Tensor:
    """One independent random square crop per image, gathered in a single indexing op."""
    _check_crop(x, crop_size)
    batch, _, height, width = x.shape
    if crop_size == height and crop_size == width:
        return x
    top = torch.randint(0, height - crop_size + 1, (batch,), generator=generator)
    left = torch.randint(0, width - crop_size + 1, (batch,), generator=generator)
    offsets = torch.arange(crop_size)
    rows = (top[:, None] + offsets).to(x.device)  # [B, c]
    cols = (left[:, None] + offsets).to(x.device)  # [B, c]
    index_b = torch.arange(batch, device=x.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 puts the broadcast dims first: [B, c, c, 3].
    patch = x[index_b, :, rows[:, :, None], cols[:, None, :]]
    return patch.permute(0, 3, 1, 2)


def _rotate_flip(
    x: torch.Tensor, angles_rad: torch.Tensor, flips: torch.Tensor, fill: str
) -> torch.Tensor:
    """Per-image rotation about the centre and horizontal flip in one grid_sample."""
    batch, _, height, width = x.shape
    cos, sin = torch.cos(angles_rad), torch.sin(angles_rad)
    sign = torch.where(flips, -1.0, 1.0)
    # affine_grid maps output coords to input coords in normalised [-1, 1] space; the aspect
    # terms keep the rotation rigid for non-square images. The flip negates the output x axis.
    aspect = width / height
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = cos * sign
    theta[:, 0, 1] = -sin / aspect
    theta[:, 1, 0] = sin * aspect * sign
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    if fill == "border":
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(2, 3), keepdim=True)
    out = F.grid_sample(x - mean, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + mean


def _jitter(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    x = x * brightness.view(-1, 1, 1, 1)
    grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    grey_mean = grey.mean(dim=(1, 2)).view(-1, 1, 1, 1)
    x = (x - grey_mean) * contrast.view(-1, 1, 1, 1) + grey_mean
    return x


def _uniform(batch: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, generator=generator)


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig, out_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Random crop -> resize -> flip + rotation -> colour jitter -> blur -> noise -> cutout;
    float [B, 3, S, S] in 0..255.

    `generator` must be a CPU generator (draws are made on CPU and moved to the device) so a
    seed reproduces the same augmentation on any device.
    """
    if generator.device.type != "cpu":
        raise ValueError("augment_batch needs a CPU torch.Generator (device-independent draws)")
    x = _check_batch(x)
    batch = x.shape[0]
    if cfg.crop_size is not None:
        x = random_crop(x, cfg.crop_size, generator)
    x = resize(x, out_size)
    if cfg.rotation_deg > 0 or cfg.hflip_p > 0:
        degrees = _uniform(batch, -cfg.rotation_deg, cfg.rotation_deg, generator)
        flips = torch.rand(batch, generator=generator) < cfg.hflip_p
        if cfg.rotation_deg > 0:
            x = _rotate_flip(x, degrees * (math.pi / 180.0), flips, cfg.rotation_fill)
        else:
            # Pure flip: exact pixel reversal, no resampling blur.
            x = torch.where(flips.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
    if cfg.brightness > 0 or cfg.contrast > 0:
        b = _uniform(batch, 1 - cfg.brightness, 1 + cfg.brightness, generator)
        c = _uniform(batch, 1 - cfg.contrast, 1 + cfg.contrast, generator)
        x = _jitter(x, b.to(x.device, x.dtype), c.to(x.device, x.dtype))
    if cfg.blur_sigma > 0:
        x = gaussian_blur(x, _uniform(batch, 0.0, cfg.blur_sigma, generator), cfg.blur_sigma)
    if cfg.noise_std > 0:
        stds = _uniform(batch, 0.0, cfg.noise_std, generator).view(-1, 1, 1, 1)
        x = x + (torch.randn(x.shape, generator=generator) * stds).to(x.device, x.dtype)
    if cfg.cutout > 0:
        x = _cutout(x, cfg.cutout, generator)
    return x.clamp_(0.0, 255.0)


def gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image (edges replicated); a sigma near 0
    leaves the image as it is. The kernel reaches 3 x `max_sigma` for every image."""
    batch, channels, height, width = x.shape
    radius = max(1, math.ceil(3.0 * max_sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    sig = sigmas.to(torch.float64).clamp(min=1e-3).view(-1, 1)
    kernel = torch.exp(-0.5 * (offsets / sig) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(x.device, x.dtype)
    weight = kernel.repeat_interleave(channels, dim=0)  # [B*C, K], one row per image channel
    flat = x.reshape(1, batch * channels, height, width)
    flat = F.pad(flat, (radius, radius, 0, 0), mode="replicate")
    flat = F.conv2d(flat, weight.view(-1, 1, 1, 2 * radius + 1), groups=batch * channels)
    flat = F.pad(flat, (0, 0, radius, radius), mode="replicate")
    flat = F.conv2d(flat, weight.view(-1, 1, 2 * radius + 1, 1), groups=batch * channels)
    return flat.view(batch, channels, height, width)


def _cutout(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """One square of side `fraction` x the image side per image, at a random place (inside the
    frame), painted one random colour."""
    batch, _, height, width = x.shape
    side = max(1, int(round(fraction * min(height, width))))
    top = torch.randint(0, height - side + 1, (batch,), generator=generator)
    left = torch.randint(0, width - side + 1, (batch,), generator=generator)
    colour = (255.0 * torch.rand(batch, 3, generator=generator)).to(x.device, x.dtype)
    rows = torch.arange(height).view(1, -1, 1)
    cols = torch.arange(width).view(1, 1, -1)
    inside = (rows >= top.view(-1, 1, 1)) & (rows < (top + side).view(-1, 1, 1))
    inside = inside & (cols >= left.view(-1, 1, 1)) & (cols < (left + side).view(-1, 1, 1))
    inside = inside.to(x.device).unsqueeze(1)  # [B, 1, H, W]
    return torch.where(inside, colour.view(batch, 3, 1, 1), x)
