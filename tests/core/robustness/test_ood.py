"""The OOD stage's one call: every image under every corruption, seeded by image, not by model."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from tests.core.tiny import fp32_on_cuda, needs_cuda, tiny_backbone
from xai_kedro.core.models import inference
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.inference import OOD_COLUMNS
from xai_kedro.core.robustness import ood
from xai_kedro.core.robustness.ood import OODConditions, evaluate_corruptions
from xai_kedro.core.robustness.presets import build_specs
from xai_kedro.core.robustness.shifts import build_shift_specs, shift_images

IDS = [f"img{i}" for i in range(6)]
SPECS = build_specs("reference")
GRID = OODConditions(SPECS, batch_size=18)


def tiny_model(seed: int) -> ViTClassifier:
    return ViTClassifier(tiny_backbone(seed=seed, init=0.25), num_classes=4).eval()


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8), rng.integers(0, 4, 6)


def model_inputs(model, pixels, labels, images_per_chunk: int, **kw) -> torch.Tensor:
    """Every pixel input the model saw, as [spec, image, 3, 32, 32]."""
    seen: list[torch.Tensor] = []
    hook = model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].cpu().clone()))
    conditions = OODConditions(SPECS, batch_size=images_per_chunk * len(SPECS), **kw)
    evaluate_corruptions(model, pixels, labels, IDS, conditions)
    hook.remove()
    chunks = torch.cat(seen).view(-1, len(SPECS), images_per_chunk, 3, 32, 32)
    return chunks.transpose(0, 1).reshape(len(SPECS), len(IDS), 3, 32, 32)


def test_rows_are_spec_major_with_image_ids(images):
    pixels, labels = images
    rows = evaluate_corruptions(tiny_model(0), pixels, labels, IDS, GRID)
    assert list(rows.columns) == ["image_id", "shift_family", *OOD_COLUMNS]
    assert set(rows["shift_family"]) == {"reference"}
    assert len(rows) == len(SPECS) * len(IDS)
    assert rows["image_id"].tolist() == IDS * len(SPECS)
    assert rows["corruption"].tolist() == [s.corruption for s in SPECS for _ in IDS]
    assert rows["severity"].tolist() == [s.severity for s in SPECS for _ in IDS]
    np.testing.assert_array_equal(rows["label"], np.tile(labels, len(SPECS)))


def test_every_adapter_sees_the_same_corrupted_pixels_whatever_the_batching(images):
    pixels, labels = images
    seen_a = model_inputs(tiny_model(0), pixels, labels, images_per_chunk=2)
    seen_b = model_inputs(tiny_model(1), pixels, labels, images_per_chunk=3)
    assert torch.equal(seen_a, seen_b)
    # the base seed moves the noise and nothing else
    moved = model_inputs(tiny_model(0), pixels, labels, images_per_chunk=2, base_seed=1)
    noise = np.array([s.corruption == "gaussian_noise" for s in SPECS])
    assert noise.sum() == 3
    changed = [not torch.equal(seen_a[i], moved[i]) for i in range(len(SPECS))]
    assert changed == noise.tolist()


# --- CUDA (run on a GPU machine: scripts/gpu_check.sh; skipped in CI) ------------------------


@needs_cuda
def test_cuda_fp32_gives_the_cpu_rows(images, monkeypatch):
    """Corruptions and the batched forward on the GPU: fp32 CUDA reproduces the CPU rows."""
    fp32_on_cuda(monkeypatch, inference)
    pixels, labels = images
    model = tiny_model(0)
    cpu = evaluate_corruptions(model, pixels, labels, IDS, GRID)
    gpu = evaluate_corruptions(
        copy.deepcopy(model).cuda(), pixels, labels, IDS, GRID, device="cuda"
    )
    pd.testing.assert_frame_equal(gpu, cpu, check_exact=False, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_cuda_bf16_predictions_agree_with_cpu_fp32(images):
    pixels, labels = images
    model = tiny_model(0)
    cpu = evaluate_corruptions(model, pixels, labels, IDS, GRID)
    gpu = evaluate_corruptions(
        copy.deepcopy(model).cuda(), pixels, labels, IDS, GRID, device="cuda"
    )
    sure = cpu["margin"].to_numpy() > 0.05
    assert sure.mean() > 0.5
    np.testing.assert_array_equal(gpu["pred"][sure], cpu["pred"][sure])
    np.testing.assert_allclose(gpu["confidence"], cpu["confidence"], atol=0.02)


def test_source_rows_start_clean_and_carry_the_logits(images):
    """`silver_source` rows: the unshifted images first; every row keeps its logit vector."""
    pixels, labels = images
    model = tiny_model(0)
    conditions = OODConditions(SPECS[:2], include_clean=True, batch_size=18)
    rows = evaluate_corruptions(model, pixels, labels, IDS, conditions)
    assert len(rows) == 3 * len(IDS)
    assert rows["corruption"].tolist()[: len(IDS)] == ["clean"] * len(IDS)
    assert rows["image_id"].tolist() == IDS * 3
    logits = np.stack(rows["logits"])
    clean = inference.predict_logits(model, pixels).numpy()
    np.testing.assert_allclose(logits[: len(IDS)], clean, rtol=1e-5, atol=1e-5)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs.max(axis=1), rows["confidence"], rtol=1e-5)
    np.testing.assert_array_equal(logits.argmax(axis=1), rows["pred"])


def test_shifts_follow_the_reference_rows_which_stay_exactly_as_they_were(images):
    pixels, labels = images
    masks = [np.pad(np.ones((10, 10), np.uint8), 15) for _ in IDS]
    shifts = build_shift_specs(
        [
            {"shift": "novel_texture", "severities": ["half"], "values": [0.5]},
            {"shift": "jpeg_compression", "severities": [3]},
        ]
    )
    model = tiny_model(0)
    alone = evaluate_corruptions(model, pixels, labels, IDS, GRID)
    both = OODConditions(SPECS, shifts, base_seed=0, batch_size=18)
    rows = evaluate_corruptions(model, pixels, labels, IDS, both, masks=masks)
    assert len(rows) == (len(SPECS) + len(shifts)) * len(IDS)
    pd.testing.assert_frame_equal(rows.iloc[: len(alone)], alone)
    tail = rows.iloc[len(alone) :].reset_index(drop=True)
    assert tail["shift_family"].tolist() == ["background"] * 6 + ["imagenet_c"] * 6
    assert tail["corruption"].tolist() == ["novel_texture"] * 6 + ["jpeg_compression"] * 6
    assert tail["severity"].tolist() == ["half"] * 6 + ["3"] * 6
    shifted = shift_images(shifts[1], pixels, labels, masks, IDS)
    direct = inference.predict_logits(model, shifted)
    np.testing.assert_allclose(np.stack(tail["logits"].iloc[6:]), direct.numpy(), atol=1e-5)
    only_shifts = evaluate_corruptions(
        model, pixels, labels, IDS, OODConditions(shifts=shifts), masks=masks
    )
    pd.testing.assert_frame_equal(only_shifts, tail)


def test_the_shift_cache_computes_each_shift_once_per_batch_and_changes_no_row(images, monkeypatch):
    """Three adapters over a partition of two batches, as `spark.adapter_udfs` loops: the rows
    with the cache are the rows without it, and each shift is computed once per batch."""
    pixels, labels = images
    masks = [np.pad(np.ones((10, 10), np.uint8), 15) for _ in IDS]
    shifts = build_shift_specs(
        [
            {"shift": "novel_texture", "severities": ["half"], "values": [0.5]},
            {"shift": "jpeg_compression", "severities": [2, 4]},
        ]
    )
    conditions = OODConditions(SPECS, shifts, batch_size=18)
    batches = [
        (pixels[:4], labels[:4], masks[:4], IDS[:4]),
        (pixels[4:], labels[4:], masks[4:], IDS[4:]),
    ]
    calls = []
    real = ood.shift_images
    monkeypatch.setattr(ood, "shift_images", lambda *a, **k: calls.append(1) or real(*a, **k))

    def partition(cache: ood.ShiftCache | None) -> list[pd.DataFrame]:
        return [
            evaluate_corruptions(tiny_model(a), x, y, ids, conditions, masks=m, cache=cache)
            for a in range(3)
            for x, y, m, ids in batches
        ]

    plain = partition(None)
    assert len(calls) == 3 * 2 * len(shifts)
    calls.clear()
    cache = ood.ShiftCache()
    for with_cache, without in zip(partition(cache), plain, strict=True):
        pd.testing.assert_frame_equal(with_cache, without)
    assert len(calls) == 2 * len(shifts)  # the first adapter's pass only
    assert cache.nbytes == len(shifts) * pixels.nbytes
    # a new partition (ids never seen, after the batches came round) starts afresh
    new_ids = ["x", "y"]
    evaluate_corruptions(
        tiny_model(0), pixels[:2], labels[:2], new_ids, conditions, masks=masks[:2], cache=cache
    )
    assert cache.nbytes == len(shifts) * pixels[:2].nbytes
    # over budget: nothing is kept, every call recomputes, the rows stay the same
    calls.clear()
    small = ood.ShiftCache(max_bytes=pixels.nbytes // 4)
    for with_cache, without in zip(partition(small), plain, strict=True):
        pd.testing.assert_frame_equal(with_cache, without)
    assert small.nbytes <= pixels.nbytes // 4
    assert len(calls) > 2 * len(shifts)
