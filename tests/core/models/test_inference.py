"""Batched inference shared by XAI and OOD: stats, batching, transforms before normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.core.tiny import tiny_backbone
from xai_kedro.core.data.preprocessing import IMAGENET_MEAN, to_model_input
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.inference import (
    OOD_COLUMNS,
    TransformSpec,
    evaluate_transforms,
    iter_batches,
    predict_logits,
    prediction_stats,
)


def tiny_model(seed: int = 0) -> ViTClassifier:
    return ViTClassifier(tiny_backbone(seed=seed, init=0.25), num_classes=4).eval()


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 40, 40, 3), dtype=np.uint8)


def numpy_stats(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    s = np.sort(p, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    return {
        "pred": p.argmax(axis=1),
        "confidence": s[:, -1],
        "margin": s[:, -1] - s[:, -2],
        "pred_entropy": ent,
        "energy": -(logits.max(axis=1) + np.log(np.exp(z).sum(axis=1))),
        "is_correct": p.argmax(axis=1) == labels,
    }


def test_prediction_stats_against_numpy():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 5.0, 1.0], [0.0, 200.0, -200.0]])
    labels = np.array([0, 1, 1, 2])
    got = prediction_stats(torch.tensor(logits), labels)
    want = numpy_stats(logits, labels)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-6, err_msg=key)
    assert got["is_correct"].dtype == bool
    assert got["pred_entropy"][1] == pytest.approx(np.log(3), abs=1e-6)
    assert got["margin"][1] == pytest.approx(0.0, abs=1e-7)
    assert np.isfinite(got["pred_entropy"]).all()  # p = 0 contributes 0, not NaN


def test_prediction_stats_softmax_in_float32_for_bf16_logits():
    logits = torch.tensor([[3.0, 2.5, -1.0]]).to(torch.bfloat16)
    got = prediction_stats(logits, np.array([0]))
    want = numpy_stats(logits.float().numpy().astype(np.float64), np.array([0]))
    assert got["confidence"][0] == pytest.approx(want["confidence"][0], abs=1e-6)
    with pytest.raises(ValueError, match="labels"):
        prediction_stats(torch.zeros(2, 3), np.array([0]))


def test_iter_batches_covers_everything_once():
    slices = list(iter_batches(10, 4))
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 10)]
    assert list(iter_batches(0, 3)) == []
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_batches(5, 0))


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_predict_logits_matches_model_for_any_batch_size(images, batch_size):
    model = tiny_model()
    with torch.inference_mode():
        want = model(to_model_input(torch.from_numpy(images), 32))
    got = predict_logits(model, images, batch_size=batch_size)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_transform_acts_on_0_255_image_at_model_resolution_before_normalisation(images):
    model = tiny_model()
    seen = []

    def to_mean_colour(x255: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(x255.shape), seeds.tolist(), float(x255.max())))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        return torch.zeros_like(x255) + mean

    got = predict_logits(
        model, images, batch_size=4, transform=to_mean_colour, seeds=np.arange(10, 17)
    )
    with torch.inference_mode():
        want = model(torch.zeros(1, 3, 32, 32))  # mean colour normalises to zero
    torch.testing.assert_close(got, want.expand(7, -1), atol=1e-5, rtol=0)
    assert [s[0] for s in seen] == [(4, 3, 32, 32), (3, 3, 32, 32)]
    assert [s[1] for s in seen] == [[10, 11, 12, 13], [14, 15, 16]]
    assert all(s[2] > 1.5 for s in seen)  # the transform saw the 0..255 scale, not normalised
    with pytest.raises(ValueError, match="seeds"):
        predict_logits(model, images, seeds=np.arange(3))


def test_bad_images_are_rejected(images):
    model = tiny_model()
    with pytest.raises(TypeError, match="uint8"):
        predict_logits(model, images.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        predict_logits(model, images[..., :2])
    with pytest.raises(ValueError, match="multiple of the patch"):
        predict_logits(model, images, input_size=30)


def test_evaluate_transforms_rows_columns_and_single_forward(images):
    model = tiny_model()
    labels = np.array([0, 1, 2, 3, 0, 1, 2])

    def darken(x255, seeds):
        return x255 * 0.5

    def noise(x255, seeds):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        return x255 + torch.stack([torch.randn(x255.shape[1:], generator=g) for g in gens]) * 30

    specs = [
        TransformSpec("clean", "0", 0.0, None),
        TransformSpec("contrast", "medium", 0.5, darken),
        TransformSpec("gaussian_noise", "heavy", 30.0, noise),
    ]
    calls = []
    model.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    seeds = np.arange(100, 107)
    frame = evaluate_transforms(model, images, labels, specs, batch_size=21, seeds=seeds)
    assert list(frame.columns) == OOD_COLUMNS
    assert len(frame) == 21
    assert calls == [21]  # all transforms of the chunk in ONE forward
    assert frame["corruption"].tolist() == ["clean"] * 7 + ["contrast"] * 7 + ["gaussian_noise"] * 7
    assert frame["severity"].tolist()[7] == "medium"
    np.testing.assert_array_equal(frame["label"], np.tile(labels, 3))
    for t, spec in enumerate(specs):
        logits = predict_logits(model, images, batch_size=2, transform=spec.fn, seeds=seeds)
        want = prediction_stats(logits, labels)
        part = frame.iloc[t * 7 : (t + 1) * 7]
        np.testing.assert_array_equal(part["pred"], want["pred"])
        np.testing.assert_allclose(part["confidence"], want["confidence"], atol=1e-5)
        np.testing.assert_allclose(part["margin"], want["margin"], atol=1e-5)
    # the darkened images really are different inputs
    assert not np.allclose(frame["confidence"][:7], frame["confidence"][7:14])


def test_evaluate_transforms_small_batches_and_per_transform_seeds(images):
    model = tiny_model()
    labels = np.zeros(7, dtype=int)
    got_seeds = {}

    def record(name):
        def fn(x255, seeds):
            got_seeds.setdefault(name, []).extend(seeds.tolist())
            return x255

        return fn

    specs = [TransformSpec("a", "1", 1.0, record("a")), TransformSpec("b", "2", 2.0, record("b"))]
    frame = evaluate_transforms(
        model,
        images,
        labels,
        specs,
        batch_size=3,  # 1 image per chunk x 2 transforms
        seeds=lambda spec: np.arange(7) + (1000 if spec.corruption == "b" else 0),
    )
    assert got_seeds == {"a": list(range(7)), "b": list(range(1000, 1007))}
    np.testing.assert_allclose(frame["confidence"][:7], frame["confidence"][7:], atol=1e-5)
    with pytest.raises(ValueError, match="no transforms"):
        evaluate_transforms(model, images, labels, [])
