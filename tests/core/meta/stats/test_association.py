"""Association statistics against SciPy / scikit-learn / hand formulas."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from xai_kedro.core.meta.stats.association import (
    STAT_KEYS,
    as_binary,
    cohens_d,
    feature_outcome_stats,
    pearson,
    roc_auc,
    separation_ratio,
)


def test_correlations_equal_scipy(known: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = known
    out = feature_outcome_stats(x, y)
    r, p = sps.pearsonr(x, y.astype(float))
    sp = sps.spearmanr(x, y)
    pb = sps.pointbiserialr(y, x)
    assert out["pearson_r"] == pytest.approx(r) and out["pearson_p"] == pytest.approx(p)
    assert out["spearman_r"] == pytest.approx(sp.statistic)
    assert out["spearman_p"] == pytest.approx(sp.pvalue)
    assert out["point_biserial_r"] == pytest.approx(pb.statistic)
    assert out["point_biserial_p"] == pytest.approx(pb.pvalue)
    assert out["mean_correct"] == pytest.approx(x[y].mean())
    assert out["mean_wrong"] == pytest.approx(x[~y].mean())
    assert out["n"] == 200
    assert set(out) == set(STAT_KEYS)
    assert out["pearson_r"] > 0.2  # the planted direction survives


def test_cohens_d_hand_formula() -> None:
    x = np.array([2.0, 4.0, 6.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    # correct: mean 4, ss 8 (n=3); wrong: mean 2.5, ss 5 (n=4); pooled sd = sqrt(13 / 5)
    expected = (4.0 - 2.5) / np.sqrt(13 / 5)
    assert cohens_d(x, y) == pytest.approx(expected)
    assert feature_outcome_stats(x, y)["cohens_d"] == pytest.approx(expected)
    assert cohens_d(x, ~y) == pytest.approx(-expected)  # sign: correct minus wrong


def test_separation_ratio_hand_formula() -> None:
    x = np.array([2.0, 4.0, 6.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    sd1, sd0 = np.std([2, 4, 6], ddof=1), np.std([1, 2, 3, 4], ddof=1)
    assert separation_ratio(x, y) == pytest.approx(1.5 / (sd1 + sd0))
    assert separation_ratio(x, ~y) == pytest.approx(1.5 / (sd1 + sd0))  # absolute


def test_separation_is_half_of_d_for_equal_spreads() -> None:
    # the relation the reference experiment's table shows (d ~ 2 x separation_ratio)
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    assert cohens_d(x, y) == pytest.approx(2 * separation_ratio(x, y))


def test_constant_feature_gives_nan_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        out = feature_outcome_stats(np.ones(10), np.arange(10) % 2 == 0, name="flat")
    for k in ("pearson_r", "spearman_r", "point_biserial_r", "cohens_d", "separation_ratio"):
        assert np.isnan(out[k]), k
    assert out["mean_correct"] == 1.0 and out["n"] == 10
    assert "flat" in caplog.text and "constant" in caplog.text


def test_single_class_gives_nan_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        out = feature_outcome_stats(np.arange(10.0), np.ones(10, dtype=bool))
    assert np.isnan(out["pearson_r"]) and np.isnan(out["cohens_d"])
    assert np.isnan(out["mean_wrong"]) and out["mean_correct"] == pytest.approx(4.5)
    assert "single class" in caplog.text


def test_nan_rows_are_dropped() -> None:
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 0.5])
    y = np.array([0, 1, 1, 1, 0, 0])
    out = feature_outcome_stats(x, y)
    keep = ~np.isnan(x)
    assert out["n"] == 5
    assert out["pearson_r"] == pytest.approx(sps.pearsonr(x[keep], y[keep])[0])


def test_bad_outcome_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="boolean or 0/1"):
        feature_outcome_stats(np.arange(3.0), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="boolean or 0/1"):
        as_binary(np.array(["a", "b"]))


def test_pearson_helper_and_auc_match_references(known: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = known
    assert pearson(x, y) == pytest.approx(sps.pearsonr(x, y.astype(float))[0])
    assert np.isnan(pearson(np.ones(5), np.arange(5)))
    ties = np.round(x, 1)  # many ties
    assert roc_auc(y, ties) == pytest.approx(roc_auc_score(y, ties))
    assert np.isnan(roc_auc(np.ones(4), np.arange(4.0)))


def test_clustered_p_values_are_the_test_of_the_image_means():
    """20 images, each repeated over 50 (adapter, corruption) rows with the same feature: a row
    test counts 1000 independent points, the clustered one the 20 images it really has."""
    from scipy import stats as sps

    from xai_kedro.core.meta.stats.association import clustered_p_values, feature_outcome_stats

    rng = np.random.default_rng(4)
    n_images, reps = 20, 50
    feature = rng.normal(size=n_images)
    p_correct = 1 / (1 + np.exp(-0.6 * feature))
    groups = np.repeat(np.arange(n_images), reps)
    x = np.repeat(feature, reps)
    y = rng.random(n_images * reps) < np.repeat(p_correct, reps)
    image_y = np.array([y[groups == g].mean() for g in range(n_images)])
    want = sps.pearsonr(feature, image_y)
    got = clustered_p_values(x, y, groups)
    assert got["n_images"] == n_images
    assert got["pearson_r_images"] == pytest.approx(want.statistic)
    assert got["pearson_p"] == pytest.approx(want.pvalue)
    naive = feature_outcome_stats(x, y)
    clustered = feature_outcome_stats(x, y, groups=groups)
    assert clustered["pearson_r"] == naive["pearson_r"]  # the row-level r is unchanged
    assert clustered["pearson_p"] == pytest.approx(want.pvalue)
    assert naive["pearson_p"] < clustered["pearson_p"] / 100  # rows overstate the evidence
