"""Heatmap metrics: closed forms, hand-computed values and numpy brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xai_kedro.core.xai.metrics import (
    XAI_METRICS,
    attention_entropy,
    bounded_ratio,
    curve_area,
    gini,
    object_attention_share,
    patch_object_fraction,
)


def brute_entropy(p: np.ndarray) -> float:
    p = p / p.sum()
    total = 0.0
    for v in p:
        if v > 0:
            total -= v * math.log2(v)
    return total / math.log2(len(p))


def brute_gini(p: np.ndarray) -> float:
    p = np.sort(p / p.sum())
    n = len(p)
    return 1.0 - (2.0 / n) * sum((n - i + 0.5) * p[i - 1] for i in range(1, n + 1))


@pytest.mark.parametrize("n", [2, 7, 64])
def test_closed_forms_uniform_and_one_hot(n):
    uniform = torch.full((1, n), 1.0 / n)
    one_hot = torch.zeros(1, n)
    one_hot[0, n // 2] = 1.0
    assert attention_entropy(uniform).item() == pytest.approx(1.0, abs=1e-12)
    assert attention_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-12)
    assert gini(uniform).item() == pytest.approx(0.0, abs=1e-12)
    assert gini(one_hot).item() == pytest.approx(1.0 - 1.0 / n, abs=1e-12)


def test_hand_computed_small_vector():
    p = np.array([[0.4, 0.1, 0.3, 0.2]])
    # entropy: -(0.1 log2 0.1 + 0.2 log2 0.2 + 0.3 log2 0.3 + 0.4 log2 0.4) / log2 4
    assert attention_entropy(p).item() == pytest.approx(1.846439344671 / 2, abs=1e-9)
    # gini: ascending p = .1 .2 .3 .4, weights 3.5 2.5 1.5 .5 -> sum 1.5 -> 1 - 2/4 * 1.5
    assert gini(p).item() == pytest.approx(0.25, abs=1e-12)
    # unnormalised input is normalised first
    assert gini(p * 10).item() == pytest.approx(0.25, abs=1e-12)
    assert attention_entropy(p * 10).item() == pytest.approx(1.846439344671 / 2, abs=1e-9)


def test_agree_with_numpy_brute_force_on_random_rows():
    rng = np.random.default_rng(3)
    h = rng.gamma(0.3, size=(20, 37))
    h[0, :30] = 0.0  # zeros exercise 0 log 0 = 0
    ent = attention_entropy(h).numpy()
    gin = gini(torch.from_numpy(h).float()).numpy()
    for row, e, g in zip(h, ent, gin, strict=True):
        assert e == pytest.approx(brute_entropy(row), abs=1e-9)
        assert g == pytest.approx(brute_gini(row), abs=1e-6)
    assert np.isfinite(ent).all()


def test_metrics_reject_bad_heatmaps():
    with pytest.raises(ValueError, match="negative"):
        gini(np.array([[0.5, -0.1]]))
    with pytest.raises(ValueError, match="zero"):
        attention_entropy(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        gini(np.ones(4))


def test_curve_area_uniform_and_true_fractions():
    k = 8
    xs = np.linspace(0, 1, k + 1)
    curves = np.stack([np.full(k + 1, 0.7), xs, 1 - xs**2])
    auc = curve_area(curves).numpy()
    assert auc[0] == pytest.approx(0.7)
    assert auc[1] == pytest.approx(0.5)
    assert auc[2] == pytest.approx(np.trapezoid(1 - xs**2, xs))
    rng = np.random.default_rng(0)
    rand = rng.random((5, 4))
    fractions = np.array([0, 5, 11, 16]) / 16
    np.testing.assert_allclose(
        curve_area(rand, fractions).numpy(), np.trapezoid(rand, fractions, axis=1)
    )
    with pytest.raises(ValueError, match="K >= 1"):
        curve_area(np.ones((2, 1)))
    with pytest.raises(ValueError, match="non-decreasing"):
        curve_area(rand, fractions[::-1].copy())


def test_bounded_ratio_clips_at_one_and_survives_a_tiny_clean_probability():
    curves = np.array([[1e-6, 0.3, 0.0], [0.8, 0.4, 0.9]])
    ratio = bounded_ratio(curves).numpy()
    np.testing.assert_allclose(ratio, [[1.0, 1.0, 0.0], [1.0, 0.5, 1.0]])
    assert ((ratio >= 0) & (ratio <= 1)).all()


def test_label_free_declarations_hold_nothing_from_labels_or_masks():
    from xai_kedro.core.meta.prediction.features import ANALYSIS_FEATURES, XAI_FEATURES

    declared = {m.name: m for m in XAI_METRICS.values()}
    assert "object_attention_share" in ANALYSIS_FEATURES
    assert "object_attention_share" not in XAI_FEATURES
    assert not declared["object_attention_share"].label_free
    for name in XAI_FEATURES:
        assert declared[name].label_free, name
    assert declared["deletion_auc"].follows_target and not declared["gini"].follows_target


def test_object_share_concentrated_empty_and_partial():
    grid, side = 4, 40  # 10 x 10 mask pixels per patch
    masks = np.zeros((3, side, side), dtype=np.uint8)
    masks[0, 10:20, 20:30] = 1  # exactly patch (1, 2) = index 6
    masks[2, 10:20, 20:25] = 1  # left half of patch 6
    heat = np.full((3, grid * grid), 1e-9)
    heat[:, 6] = 1.0
    share = object_attention_share(heat, masks, grid).numpy()
    assert share[0] == pytest.approx(1.0, abs=1e-6)
    assert share[1] == 0.0  # empty mask
    assert share[2] == pytest.approx(0.5, abs=1e-6)
    # uniform heatmap: the share is the object's area fraction
    uniform = np.ones((1, grid * grid))
    assert object_attention_share(uniform, masks[:1], grid).item() == pytest.approx(1 / 16)


def test_patch_object_fraction_geometry_and_errors():
    mask = np.zeros((1, 16, 16), dtype=np.uint8)
    mask[0, :8, 8:] = 255  # any nonzero value is object
    frac = patch_object_fraction(mask, 2).numpy()
    np.testing.assert_allclose(frac, [[0.0, 1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="grid"):
        object_attention_share(np.ones((1, 9)), mask, 2)
