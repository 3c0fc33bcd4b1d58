"""The zoo-widening augmentations (blur, noise, cutout): seeded, off by default, and doing what
they say. The older transforms are tested with the training loop (tests/core/models)."""

from __future__ import annotations

import pytest
import torch

from tests.core.tiny import needs_cuda
from xai_kedro.core.adapters import AdapterConfig
from xai_kedro.core.data.augment import AugmentConfig, augment_batch, gaussian_blur

OLD_FIELDS = dict(rotation_deg=15, hflip_p=0.5, brightness=0.2, contrast=0.2, crop_size=36)


def _batch(n: int = 4, size: int = 40, seed: int = 11) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)


def _grey(n: int = 6, size: int = 24, value: float = 128.0) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def test_new_fields_off_reproduce_the_augmentation_before_them():
    """Numbers taken from the code before blur/noise/cutout existed (same seed, same input):
    two calls in a row, so the generator's state after the first call is checked too."""
    gen = torch.Generator().manual_seed(5)
    cfg = AugmentConfig(**OLD_FIELDS, blur_sigma=0.0, noise_std=0.0, cutout=0.0)
    first, second = augment_batch(_batch(), cfg, 32, gen), augment_batch(_batch(), cfg, 32, gen)
    assert float(first.double().sum()) == pytest.approx(1657305.8127593994, rel=1e-12)
    assert float(second.double().sum()) == pytest.approx(1524756.3008995056, rel=1e-12)
    assert float((first.double() ** 2).sum()) == pytest.approx(242499248.56849146, rel=1e-12)
    expected = [157.02975463867188, 147.93641662597656, 148.41770935058594]
    assert first[0, :, 5, 7].tolist() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "fields",
    [
        {"noise_std": 40.0},
        {"blur_sigma": 2.0},
        {"cutout": 0.3},
        {"noise_std": 20.0, "blur_sigma": 1.0, "cutout": 0.2},
    ],
)
def test_new_augmentations_are_seeded_bounded_and_not_identity(fields):
    cfg = AugmentConfig(**fields)
    assert not cfg.is_identity
    x = _batch(size=24)
    a = augment_batch(x, cfg, 24, torch.Generator().manual_seed(3))
    b = augment_batch(x, cfg, 24, torch.Generator().manual_seed(3))
    c = augment_batch(x, cfg, 24, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 3, 24, 24) and a.min() >= 0 and a.max() <= 255
    assert not torch.equal(a, x.float())


def test_new_augmentations_leave_the_earlier_draws_alone():
    """Blur, noise and cutout come after the colour jitter: the flips and rotations of a batch
    are those of the same config without them (an exact flip with no rotation shows it)."""
    x = _batch(size=24)
    plain = augment_batch(x, AugmentConfig(hflip_p=0.5), 24, torch.Generator().manual_seed(2))
    blurred = augment_batch(
        x, AugmentConfig(hflip_p=0.5, blur_sigma=1e-6), 24, torch.Generator().manual_seed(2)
    )
    torch.testing.assert_close(blurred, plain, atol=1e-3, rtol=0)


def test_noise_has_a_per_image_std_within_the_setting():
    x = _grey(n=64)
    out = augment_batch(x, AugmentConfig(noise_std=30.0), 24, torch.Generator().manual_seed(0))
    stds = (out - x).std(dim=(1, 2, 3))
    means = (out - x).mean(dim=(1, 2, 3))
    assert stds.max() <= 30.0 * 1.1 and stds.min() >= 0.0
    assert stds.std() > 3.0  # one std per image, drawn in [0, 30]
    assert means.abs().max() < 3.0  # zero-mean noise (128 +- 3 std never clamps)


def test_blur_smooths_keeps_constants_and_has_the_right_width():
    const = _grey(n=2, value=77.0)
    sigmas = torch.tensor([0.5, 3.0])
    assert torch.allclose(gaussian_blur(const, sigmas, 3.0), const, atol=1e-3)
    impulse = torch.zeros(2, 3, 31, 31)
    impulse[:, :, 15, 15] = 1000.0
    out = gaussian_blur(impulse, torch.tensor([1.0, 2.0]), 2.0)
    assert torch.allclose(out.sum(dim=(2, 3)), torch.full((2, 3), 1000.0), rtol=1e-4)
    offsets = torch.arange(31.0) - 15
    profile = out[:, 0].sum(dim=1) / 1000.0  # marginal along x
    variance = (profile * offsets**2).sum(dim=1)
    assert variance.tolist() == pytest.approx([1.0, 4.0], rel=0.02)
    # sigma ~ 0 is the identity; a random batch loses high-frequency energy when blurred
    x = _batch(n=2, size=24).float()
    assert torch.allclose(gaussian_blur(x, torch.zeros(2), 2.0), x, atol=1e-3)
    smooth = augment_batch(x, AugmentConfig(blur_sigma=3.0), 24, torch.Generator().manual_seed(1))
    assert smooth.diff(dim=-1).abs().mean() < 0.8 * x.diff(dim=-1).abs().mean()


def test_cutout_paints_one_square_of_one_colour_per_image():
    x = _batch(n=8, size=20).float()
    out = augment_batch(x, AugmentConfig(cutout=0.3), 20, torch.Generator().manual_seed(0))
    changed = (out != x).any(dim=1)  # [B, H, W]
    corners = set()
    for image, mask in zip(out, changed, strict=True):
        rows, cols = torch.nonzero(mask, as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        assert int(rows.max()) - top + 1 <= 6 and int(cols.max()) - left + 1 <= 6  # 0.3 x 20
        patch = image[:, top : top + 6, left : left + 6]
        assert torch.equal(patch, patch[:, :1, :1].expand_as(patch))  # one colour
        corners.add((top, left))
    assert len(corners) > 1  # a place per image


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"noise_std": -1}, "noise_std"),
        ({"noise_std": 300}, "noise_std"),
        ({"blur_sigma": -0.5}, "blur_sigma"),
        ({"blur_sigma": 100}, "blur_sigma"),
        ({"cutout": 1.0}, "cutout"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(bad, key):
    with pytest.raises(ValueError, match=key) as info:
        AugmentConfig.from_params(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=rf"members\[\]\.augmentation: {key}"):
        AdapterConfig.from_params({"adapter_id": "x", "augmentation": bad})


def test_numbers_from_yaml_are_coerced():
    cfg = AugmentConfig.from_params({"noise_std": 40, "blur_sigma": "2", "cutout": 0})
    assert cfg.noise_std == 40.0 and isinstance(cfg.blur_sigma, float) and cfg.cutout == 0.0


@needs_cuda
def test_new_augmentations_on_cuda_draw_what_the_cpu_draws():
    """Blur, noise and cutout draw on the CPU generator too: a seed gives the same views."""
    cfg = AugmentConfig(**OLD_FIELDS, blur_sigma=2.0, noise_std=40.0, cutout=0.3)
    cpu = augment_batch(_batch(), cfg, 32, torch.Generator().manual_seed(3))
    gpu = augment_batch(_batch().cuda(), cfg, 32, torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=0.5, rtol=0)  # 0..255: float noise only
