"""Training loop (adapters learn, reproducibly), evaluation metrics, LR schedule, augmentation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from tests.core.tiny import needs_cuda
from tests.core.tiny import tiny_backbone as shared_tiny_backbone
from xai_kedro.core.adapters import AdapterConfig, attach_adapter
from xai_kedro.core.adapters.training import train_adapter
from xai_kedro.core.data.augment import (
    AugmentConfig,
    _rotate_flip,
    augment_batch,
    eval_view,
    hwc_to_chw,
)
from xai_kedro.core.data.preprocessing import normalise
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.training import evaluate, lr_factor

NUM_CLASSES = 3
SIZE = 32


def tiny_backbone(seed: int = 0) -> torch.nn.Module:
    return shared_tiny_backbone(seed=seed, size=SIZE).requires_grad_(False)


def coloured_squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class = colour channel of a bright square at a random place on a dark noisy background."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    images = rng.integers(0, 60, (n, SIZE, SIZE, 3)).astype(np.uint8)
    for i, label in enumerate(labels):
        y, x = rng.integers(0, SIZE - 12, 2)
        images[i, y : y + 12, x : x + 12, label] = 220
    return images, labels


@pytest.fixture(scope="module")
def data():
    train = coloured_squares(150, seed=1)
    val = coloured_squares(60, seed=2)
    return train, val


@pytest.fixture(scope="module")
def backbone():
    return tiny_backbone()


def _train(backbone, data, device="cpu", **kw):
    params = dict(adapter_id="t", epochs=5, batch_size=16, lr=1e-2, seed=0, warmup_ratio=0.1)
    params.update(kw)
    cfg = AdapterConfig.from_params(params)
    clf = attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), cfg).to(device)
    (train_x, train_y), (val_x, val_y) = data
    result = train_adapter(
        clf, cfg, train_x, train_y, val_x, val_y, input_size=SIZE, device=device, progress=False
    )
    return clf, result


def _assert_learned(result):
    history = result.history
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert result.metrics["accuracy"] >= 0.8  # chance is 1/3
    assert result.metrics["f1"] >= 0.75


def test_lora_adapter_learns(backbone, data):
    clf, result = _train(
        backbone,
        data,
        rank=4,
        alpha="2r",
        target_roles="query,value,fc1,fc2",
        grad_accumulation=2,
        augmentation={"hflip_p": 0.5, "brightness": 0.1},
    )
    _assert_learned(result)
    lora_b = [p for n, p in clf.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero
    base = dict(backbone.named_parameters())
    for name, param in clf.backbone.named_parameters():
        if "lora_" not in name:
            key = name.replace(".base_layer", "")
            assert torch.equal(param, base[key]), f"frozen weight {name} changed"
    m = result.metrics
    assert set(m) >= {
        "train_loss",
        "eval_loss",
        "accuracy",
        "f1",
        "precision",
        "recall",
        "trainable_params",
        "trainable_pct",
        "duration_s",
    }
    assert 0 < m["trainable_pct"] < 100 and m["duration_s"] > 0
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]
    assert not clf.training


def test_linear_probe_learns(backbone, data):
    clf, result = _train(backbone, data, rank=0, lr=3e-2)
    _assert_learned(result)
    assert result.metrics["trainable_params"] == 2 * 32 * NUM_CLASSES + NUM_CLASSES


def test_training_is_reproducible_on_cpu(backbone, data):
    kw = dict(
        rank=2,
        alpha=4,
        target_roles="query,value",
        dropout=0.1,
        epochs=2,
        augmentation={"rotation_deg": 10, "hflip_p": 0.5, "crop_size": 28},
    )
    clf1, r1 = _train(backbone, data, **kw)
    clf2, r2 = _train(backbone, data, **kw)
    clf3, r3 = _train(backbone, data, **{**kw, "seed": 1})
    sd1, sd2, sd3 = clf1.state_dict(), clf2.state_dict(), clf3.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    assert not torch.equal(sd1["head.weight"], sd3["head.weight"])


def test_train_adapter_rejects_misuse(backbone, data):
    (tx, ty), (vx, vy) = data
    cfg = AdapterConfig("x", rank=4)
    bare = ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES)
    with pytest.raises(ValueError, match="attach_adapter"):
        train_adapter(bare, cfg, tx, ty, vx, vy, input_size=SIZE, device="cpu", progress=False)
    probe = attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), AdapterConfig("p"))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        train_adapter(
            probe,
            AdapterConfig("p"),
            tx,
            ty + 1,
            vx,
            vy,
            input_size=SIZE,
            device="cpu",
            progress=False,
        )
    with pytest.raises(TypeError, match="uint8"):
        train_adapter(
            probe,
            AdapterConfig("p"),
            tx.astype(np.float32),
            ty,
            vx,
            vy,
            input_size=SIZE,
            device="cpu",
            progress=False,
        )


def test_evaluate_matches_manual_computation(backbone, data):
    _, (vx, vy) = data
    clf = ViTClassifier(backbone, NUM_CLASSES).eval()
    metrics = evaluate(clf, vx, vy, input_size=SIZE, device="cpu", batch_size=7, crop_size=24)
    with torch.no_grad():
        x = normalise(eval_view(hwc_to_chw(torch.from_numpy(vx)), 24, SIZE))
        logits = clf(x)
    pred = logits.argmax(-1).numpy()
    assert metrics["accuracy"] == pytest.approx(float((pred == vy).mean()))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(vy).long()).item()
    assert metrics["loss"] == pytest.approx(loss, rel=1e-5)
    recalls = [np.mean(pred[vy == c] == c) for c in np.unique(np.concatenate([vy, pred]))]
    assert metrics["recall"] == pytest.approx(float(np.mean(recalls)))
    assert metrics["n"] == len(vy)


def test_lr_schedule():
    total, warmup = 100, 10
    factors = [lr_factor(s, total, warmup, "cosine") for s in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert factors[-1] < 0.01
    assert factors[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert all(lr_factor(s, total, 0, "constant") == 1.0 for s in range(total))


# ------------------------------------------------------------------------------ augmentation
def _batch(seed: int = 0, size: int = 40) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (5, 3, size, size), generator=gen, dtype=torch.uint8)


def test_augment_is_seeded_shaped_and_bounded():
    cfg = AugmentConfig(rotation_deg=30, hflip_p=0.5, brightness=0.2, contrast=0.2, crop_size=32)
    x = _batch()
    a = augment_batch(x, cfg, 24, torch.Generator().manual_seed(3))
    b = augment_batch(x, cfg, 24, torch.Generator().manual_seed(3))
    c = augment_batch(x, cfg, 24, torch.Generator().manual_seed(4))
    assert a.shape == (5, 3, 24, 24) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 255
    with pytest.raises(ValueError, match="larger than the stored"):
        augment_batch(x, AugmentConfig(crop_size=64), 24, torch.Generator())


def test_identity_augment_equals_eval_view_and_flip_is_exact():
    x = _batch().float()
    gen = torch.Generator().manual_seed(0)
    assert torch.allclose(augment_batch(x, AugmentConfig(), 24, gen), eval_view(x, None, 24))
    flipped = augment_batch(x, AugmentConfig(hflip_p=1.0), 40, gen)
    assert torch.equal(flipped, x.flip(-1))
    # Centre crop of eval_view takes the middle.
    assert torch.equal(eval_view(x, 20, 20), x[..., 10:30, 10:30])


def test_random_crop_takes_real_windows():
    rows, cols = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    x = torch.stack([rows, cols, torch.zeros_like(rows)]).expand(6, 3, 40, 40)
    out = augment_batch(x, AugmentConfig(crop_size=16), 16, torch.Generator().manual_seed(0))
    for img in out:
        top, left = int(img[0, 0, 0]), int(img[1, 0, 0])
        assert torch.equal(img, x[0, :, top : top + 16, left : left + 16])
    assert len({(int(img[0, 0, 0]), int(img[1, 0, 0])) for img in out}) > 1  # per-image offsets


def test_rotation_geometry_and_fill():
    x = _batch(size=16).float()
    no_flip = torch.zeros(5, dtype=torch.bool)
    half_turn = _rotate_flip(x, torch.full((5,), math.pi), no_flip, "mean")
    assert torch.allclose(half_turn, x.flip(-1).flip(-2), atol=1e-3)
    quarter = _rotate_flip(x, torch.full((5,), math.pi / 2), no_flip, "border")
    assert any(
        torch.allclose(quarter, torch.rot90(x, k, dims=(-2, -1)), atol=1e-3) for k in (1, -1)
    )
    flipped = _rotate_flip(x, torch.zeros(5), torch.ones(5, dtype=torch.bool), "mean")
    assert torch.allclose(flipped, x.flip(-1), atol=1e-3)
    # Uncovered corners take the image mean, so a constant image stays constant.
    const = torch.full((2, 3, 16, 16), 77.0)
    assert torch.allclose(_rotate_flip(const, torch.full((2,), 0.7), no_flip[:2], "mean"), const)
    corner = _rotate_flip(x, torch.full((5,), math.pi / 4), no_flip, "mean")[:, :, 0, 0]
    assert torch.allclose(corner, x.mean(dim=(2, 3)), atol=1e-3)


def test_colour_jitter_factors_stay_in_range():
    x = _batch(size=16).float() * 0.5 + 1  # keep away from the clamp
    y = augment_batch(x, AugmentConfig(brightness=0.3), 16, torch.Generator().manual_seed(1))
    ratio = (y / x).flatten(1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)  # one factor per image
    assert ratio.min() >= 0.7 - 1e-4 and ratio.max() <= 1.3 + 1e-4
    assert ratio[:, 0].std() > 0.01
    mid = _batch(size=16).float() * 0.3 + 90  # 90..166: contrast 0.7..1.3 never clamps
    z = augment_batch(mid, AugmentConfig(contrast=0.3), 16, torch.Generator().manual_seed(1))
    grey = lambda t: (0.299 * t[:, 0] + 0.587 * t[:, 1] + 0.114 * t[:, 2]).mean(dim=(1, 2))  # noqa: E731
    assert torch.allclose(grey(z), grey(mid), atol=1e-2)  # contrast keeps the mean grey level
    spread = z.std(dim=(1, 2, 3)) / mid.std(dim=(1, 2, 3))
    assert spread.min() >= 0.7 - 1e-3 and spread.max() <= 1.3 + 1e-3 and spread.std() > 0.01


def test_augment_config_validation():
    assert AugmentConfig.from_params(None).is_identity
    assert AugmentConfig.from_params({"crop_size": "224", "rotation_deg": 30}).crop_size == 224
    for bad in ({"hflip_p": 1.5}, {"brightness": -0.1}, {"rotation_fill": "zero"}, {"flip": 1}):
        with pytest.raises(ValueError):
            AugmentConfig.from_params(bad)


# --- CUDA (run on a GPU machine: scripts/gpu_check.sh; skipped in CI) ------------------------


@needs_cuda
def test_augmentation_on_cuda_draws_what_the_cpu_draws():
    """Draws come from the CPU generator, so a seed gives the same views on either device."""
    cfg = AugmentConfig(rotation_deg=30, hflip_p=0.5, brightness=0.2, contrast=0.2, crop_size=32)
    x = _batch()
    cpu = augment_batch(x, cfg, 24, torch.Generator().manual_seed(3))
    gpu = augment_batch(x.cuda(), cfg, 24, torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=0.5, rtol=0)  # 0..255: float noise only


@needs_cuda
def test_dora_adapter_learns_on_cuda(backbone, data):
    """The training loop on the GPU (bf16 autocast, DoRA + rsLoRA, augmentation, accumulation)."""
    clf, result = _train(
        backbone,
        data,
        device="cuda",
        rank=4,
        alpha="2r",
        use_dora=True,
        use_rslora=True,
        target_roles="query,value,fc1,fc2",
        grad_accumulation=2,
        augmentation={"hflip_p": 0.5, "rotation_deg": 10, "crop_size": 28},
    )
    _assert_learned(result)
    assert next(clf.parameters()).device.type == "cuda"
