"""Corruptions vs their references (PIL, NumPy/SciPy formulas of ImageNet-C) and RNG contracts.

Tolerances achieved (Pillow 13, x86-64): PIL GaussianBlur and ImageEnhance.Contrast are matched
bit-exactly (max abs diff 0); ImageNet-C formulas match their NumPy/SciPy references exactly too.
Blur is asserted exact; contrast is asserted at <= 1 level with <= 0.1 % of pixels off (the
brief's tolerance: a rounding-instead-of-truncation bug would put ~50 % of pixels off by one).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_sample_image

from xai_kedro.core.robustness import corruptions as C
from xai_kedro.core.robustness import presets as P

REFERENCE_VALUES = {
    "gaussian_noise": [15.0, 40.0, 80.0],
    "gaussian_blur": [1.0, 3.0, 6.0],
    "contrast": [0.7, 0.4, 0.15],
}
IMAGENET_C_VALUES = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "gaussian_blur": [1.0, 2.0, 3.0, 4.0, 6.0],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
}


# ----------------------------------------------------------------------------------------------
# test images (HWC uint8)
# ----------------------------------------------------------------------------------------------
def _random_image(h: int = 37, w: int = 53, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _structured_image(h: int = 48, w: int = 64) -> np.ndarray:
    """Gradients, hard edges, a disc, a checkerboard and a sinusoid: every blur/contrast regime."""
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    r = 255 * xx / (w - 1)
    g = 128 + 100 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    b = np.where(((yy // 4 + xx // 4) % 2) == 0, 230.0, 20.0)
    disc = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (h / 4) ** 2
    r[disc], g[disc] = 10.0, 250.0
    b[5:15, 40:60] = 0.0
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def _natural_image(h: int = 64, w: int = 80) -> np.ndarray:
    """A crop of scikit-learn's bundled photograph (no download)."""
    return np.ascontiguousarray(load_sample_image("china.jpg")[120 : 120 + h, 200 : 200 + w])


IMAGES = {
    "random": _random_image(),
    "structured": _structured_image(),
    "natural": _natural_image(),
    "tiny": _random_image(5, 9, seed=1),  # smaller than the blur support: edge handling
}


def _to_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy().astype(np.int64)


def _seeds(n: int, start: int = 0) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# reference preset vs PIL
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("factor", [*REFERENCE_VALUES["contrast"], 0.0, 1.0, 1.3])
def test_contrast_matches_pil(name: str, factor: float) -> None:
    img = IMAGES[name]
    ref = np.asarray(ImageEnhance.Contrast(Image.fromarray(img)).enhance(factor)).astype(np.int64)
    out = _to_hwc(C.contrast(_to_batch(img), factor, _seeds(1)))
    diff = np.abs(out - ref)
    assert diff.max() <= 1
    assert (diff > 0).mean() <= 1e-3


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("radius", [*REFERENCE_VALUES["gaussian_blur"], 0.5, 2.5])
def test_gaussian_blur_matches_pil_exactly(name: str, radius: float) -> None:
    img = IMAGES[name]
    ref = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))
    out = _to_hwc(C.gaussian_blur(_to_batch(img), radius, _seeds(1)))
    np.testing.assert_array_equal(out, ref.astype(np.int64))


def test_gaussian_blur_is_not_a_true_gaussian() -> None:
    """Pillow's 3-pass box approximation differs from a true Gaussian: the match above is real."""
    img = IMAGES["structured"]
    out = _to_hwc(C.gaussian_blur(_to_batch(img), 3.0, _seeds(1)))
    true = np.round(gaussian_filter(img.astype(float), (3.0, 3.0, 0), mode="nearest"))
    assert np.abs(out - true).max() >= 2


def test_blur_radius_zero_and_non_integer_input_are_quantised() -> None:
    img = IMAGES["natural"]
    x = _to_batch(img)
    np.testing.assert_array_equal(_to_hwc(C.gaussian_blur(x, 0.0, _seeds(1))), img)
    # resized model input is non-integer: it is rounded to the 8-bit grid first
    shifted = x + 0.3
    assert torch.equal(C.gaussian_blur(shifted, 3.0, _seeds(1)), C.gaussian_blur(x, 3.0, _seeds(1)))


def test_pil_box_radius_has_the_gaussian_variance() -> None:
    """3 extended boxes of radius l + a have variance radius**2 (Gwosdek et al. eq. 7-14)."""
    for radius in (1.0, 3.0, 6.0):
        box = C.pil_box_radius(radius)
        r, a = int(box), box - int(box)
        # variance of one extended box: inner 2r+1 taps weight w, two far taps weight a*w
        w = 1.0 / (2 * r + 1 + 2 * a)
        taps = np.arange(-r, r + 1)
        var = w * (taps**2).sum() + 2 * a * w * (r + 1) ** 2
        assert 3 * var == pytest.approx(radius**2, rel=1e-5)


# ----------------------------------------------------------------------------------------------
# noise
# ----------------------------------------------------------------------------------------------
def test_noise_statistics_on_mid_grey() -> None:
    x = torch.full((4, 3, 64, 64), 128.0)
    out = C.gaussian_noise(x, 15.0, _seeds(4))
    d = (out - x).double()
    assert d.std().item() == pytest.approx(15.0, rel=0.03)
    assert abs(d.mean().item()) < 0.2  # standard error is ~0.07
    # Gaussian, not e.g. uniform: the share of |d| <= t for integer t (the unrounded noise was
    # below t + 0.5) follows the normal CDF
    for t in (7, 15, 30):
        expected = math.erf((t + 0.5) / 15 / math.sqrt(2))
        assert (d.abs() <= t).double().mean().item() == pytest.approx(expected, abs=0.01)


def test_hash_normal_is_white_and_seed_independent() -> None:
    z = C.hash_normal(torch.tensor([1, 2, 2**62 + 5]), (3, 64, 64), "cpu")
    assert z.shape == (3, 3, 64, 64) and z.dtype == torch.float64
    assert abs(z.mean().item()) < 0.02 and z.std().item() == pytest.approx(1.0, abs=0.02)
    flat = z.reshape(3, -1)
    assert abs((z[..., 1:] * z[..., :-1]).mean().item()) < 0.02  # neighbouring pixels
    assert abs((flat[:, 1:] * flat[:, :-1]).mean().item()) < 0.02
    for a, b in ((0, 1), (1, 2), (0, 2)):  # different seeds are uncorrelated
        assert abs(torch.corrcoef(flat[[a, b]])[0, 1].item()) < 0.03


def test_noise_deterministic_and_seed_dependent() -> None:
    x = _to_batch(IMAGES["natural"]).repeat(2, 1, 1, 1)
    a = C.gaussian_noise(x, 40.0, torch.tensor([7, 7]))
    b = C.gaussian_noise(x, 40.0, torch.tensor([7, 7]))
    assert torch.equal(a, b)
    assert torch.equal(a[0], a[1])  # same seed, same image -> same output
    c = C.gaussian_noise(x, 40.0, torch.tensor([7, 8]))
    assert not torch.equal(c[0], c[1])
    assert (c[0] != c[1]).float().mean() > 0.9


@pytest.mark.parametrize("fn_name", ["gaussian_noise", "imagenet_c_gaussian_noise"])
def test_noise_independent_of_batch_composition(fn_name: str) -> None:
    fn = C.CORRUPTIONS.get(fn_name)
    value = 40.0 if fn_name == "gaussian_noise" else 0.18
    target = _to_batch(IMAGES["natural"])
    seed = torch.tensor([123456789012345])
    alone = fn(target, value, seed)
    others = torch.rand(4, 3, *target.shape[2:], generator=torch.Generator().manual_seed(0)) * 255
    batch = torch.cat([others[:2], target, others[2:]])
    seeds = torch.tensor([1, 2, 123456789012345, 3, 4])
    inside = fn(batch, value, seeds)
    assert torch.equal(inside[2:3], alone)
    bigger = fn(torch.cat([target, batch]), value, torch.cat([seed, seeds]))
    assert torch.equal(bigger[0:1], alone)


# ----------------------------------------------------------------------------------------------
# ImageNet-C vs NumPy/SciPy references of make_imagenet_c.py
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", IMAGENET_C_VALUES["contrast"])
def test_imagenet_c_contrast_matches_numpy(c: float) -> None:
    img = IMAGES["natural"]
    x = img / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    ref = np.round(np.clip((x - means) * c + means, 0, 1) * 255)
    out = _to_hwc(C.imagenet_c_contrast(_to_batch(img), c, _seeds(1)))
    assert np.abs(out - ref).max() <= 1
    assert (out != ref).mean() <= 1e-3


@pytest.mark.parametrize("c", IMAGENET_C_VALUES["gaussian_noise"])
def test_imagenet_c_noise_matches_numpy(c: float) -> None:
    img = IMAGES["structured"]
    seeds = torch.tensor([42])
    z = C.hash_normal(seeds, (3, *img.shape[:2]), "cpu")[0].permute(1, 2, 0).numpy()
    ref = np.round(np.clip(img / 255.0 + z * c, 0, 1) * 255)
    out = _to_hwc(C.imagenet_c_gaussian_noise(_to_batch(img), c, seeds))
    assert np.abs(out - ref).max() <= 1
    assert (out != ref).mean() <= 1e-3


@pytest.mark.parametrize("name", ["natural", "structured", "tiny"])
@pytest.mark.parametrize("c", [1.0, 3.0, 6.0])
def test_imagenet_c_blur_matches_scipy(name: str, c: float) -> None:
    """skimage.filters.gaussian(multichannel) == scipy gaussian_filter, mode 'nearest', truncate 4."""
    img = IMAGES[name]
    blurred = gaussian_filter(img / 255.0, sigma=(c, c, 0), mode="nearest", truncate=4.0)
    ref = np.round(np.clip(blurred, 0, 1) * 255)
    out = _to_hwc(C.imagenet_c_gaussian_blur(_to_batch(img), c, _seeds(1)))
    assert np.abs(out - ref).max() <= 1
    assert (out != ref).mean() <= 1e-3


# ----------------------------------------------------------------------------------------------
# contracts shared by every corruption
# ----------------------------------------------------------------------------------------------
ALL_SPECS = P.build_specs("reference") + P.build_specs("imagenet_c")


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.fn_name}-{s.severity}")
def test_outputs_are_valid_8bit_images(spec: P.CorruptionSpec) -> None:
    x = torch.rand(3, 3, 20, 24, generator=torch.Generator().manual_seed(1)) * 255
    out = P.apply_spec(spec, x, _seeds(3))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 255
    assert torch.equal(out, out.round())
    # batch-independent for every corruption (not only noise)
    assert torch.equal(P.apply_spec(spec, x[1:2], _seeds(1, start=1)), out[1:2])


@pytest.mark.parametrize("preset", ["reference", "imagenet_c"])
def test_heavier_severity_degrades_more(preset: str) -> None:
    x = torch.stack([_to_batch(IMAGES["natural"])[0], _to_batch(IMAGES["natural"][::-1])[0]])
    by_corruption: dict[str, list[float]] = {}
    for spec in P.build_specs(preset):
        out = P.apply_spec(spec, x, _seeds(2))
        by_corruption.setdefault(spec.corruption, []).append((out - x).abs().mean().item())
    assert set(by_corruption) == {"gaussian_noise", "gaussian_blur", "contrast"}
    for corruption, dists in by_corruption.items():
        assert all(a < b for a, b in zip(dists, dists[1:], strict=False)), (corruption, dists)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: f"{s.fn_name}-{s.severity}")
def test_cuda_matches_cpu(spec: P.CorruptionSpec) -> None:
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(2)) * 255
    cpu = P.apply_spec(spec, x, _seeds(2))
    gpu = P.apply_spec(spec, x.cuda(), _seeds(2).cuda())
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() != cpu).float().mean().item() <= 1e-4
    assert (gpu.cpu() - cpu).abs().max().item() <= 1


def test_bad_inputs_raise_clear_errors() -> None:
    x = torch.full((2, 3, 8, 8), 100.0)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        C.gaussian_noise(x[0], 15.0, _seeds(2))
    with pytest.raises(TypeError, match="float tensor"):
        C.gaussian_blur(x.to(torch.uint8), 1.0, _seeds(2))
    with pytest.raises(ValueError, match="length B=2"):
        C.contrast(x, 0.5, _seeds(3))
    with pytest.raises(TypeError, match="integer tensor"):
        C.gaussian_noise(x, 15.0, torch.zeros(2))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        C.gaussian_noise(x, -1.0, _seeds(2))
    with pytest.raises(ValueError, match="radius must be >= 0"):
        C.gaussian_blur(x, -2.0, _seeds(2))
    with pytest.raises(ValueError, match="finite"):
        C.imagenet_c_contrast(x, float("nan"), _seeds(2))
    with pytest.raises(ValueError, match="RGB"):
        C.contrast(x[:, :1], 0.5, _seeds(2))


# ----------------------------------------------------------------------------------------------
# specs, presets, seeds
# ----------------------------------------------------------------------------------------------
