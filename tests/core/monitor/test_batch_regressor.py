"""The per-batch regressor: its closed-form ridge, its seeded source-side batches, its JSON form
and its row in the monitor's estimates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.monitor.batch_regressor import (
    BATCH_REGRESSOR,
    BatchRegressor,
    batch_features,
    fit_batch_regressor,
    fit_ridge,
    profile_features,
    training_batches,
)
from xai_kedro.core.monitor.evaluation import CLEAN_CONDITION, Condition, ConditionPool

SHIFT = Condition("source", "contrast", "s1")


def test_ridge_recovers_a_line_and_predicts_batch_means():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = 0.5 + 0.1 * X[:, 0] - 0.2 * X[:, 1]
    reg = fit_ridge(X, y, ["confidence", "gini"], alpha=1e-9)
    assert reg.fitted and reg.n_batches == 200 and reg.intercept == pytest.approx(y.mean())
    profile = pd.DataFrame({"confidence": [1.0, 3.0], "gini": [0.5, 0.5], "other": [9, 9]})
    assert reg.predict(profile) == pytest.approx(0.5 + 0.1 * 2.0 - 0.2 * 0.5)
    constant = fit_ridge(np.c_[X[:, 0], np.ones(200)], y, ["a", "b"])  # zero spread: scale 1
    assert constant.scale[1] == 1.0 and np.isfinite(constant.coef).all()
    with pytest.raises(ValueError, match="aligned"):
        fit_ridge(X, y[:3], ["a", "b"])


def test_features_are_the_label_free_profile_and_skip_missing_values():
    cols = ["pred", "confidence", "gini", "object_attention_share", "failure_risk", "logits"]
    features = profile_features(cols)
    assert "confidence" in features and "gini" in features
    assert not {"pred", "object_attention_share", "failure_risk", "logits"} & set(features)
    frame = pd.DataFrame({"confidence": [0.2, np.nan, 0.6]})
    np.testing.assert_allclose(batch_features(frame, ["confidence"]), [0.4])


def _pools(n: int = 10) -> tuple[dict, np.ndarray]:
    labels = np.arange(n) % 2
    clean = pd.DataFrame({"pred": labels, "confidence": np.full(n, 0.9)})  # all right
    shifted = pd.DataFrame({"pred": 1 - labels, "confidence": np.full(n, 0.5)})  # all wrong
    empty = np.zeros((n, 0))
    return {
        CLEAN_CONDITION: ConditionPool(clean, empty),
        SHIFT: ConditionPool(shifted, empty),
    }, labels


def test_training_batches_mix_a_seeded_share_of_the_shift_into_clean_images():
    pools, labels = _pools()
    profiles, accuracy = training_batches(pools, labels, size=8, n_batches=4, seed=3)
    assert len(profiles) == 8 and all(len(p) == 8 for p in profiles)
    # known answer: accuracy = share of clean images = mean confidence mapped from 0.5..0.9
    for profile, acc in zip(profiles, accuracy, strict=True):
        assert acc == pytest.approx((profile["confidence"].mean() - 0.5) / 0.4)
    assert set(accuracy[:4]) == {1.0}  # the clean condition's batches (sorted first)
    again, _ = training_batches(pools, labels, size=8, n_batches=4, seed=3)
    assert all(a.equals(b) for a, b in zip(profiles, again, strict=True))
    reg = fit_batch_regressor(pools, labels, size=8, n_batches=4, seed=3)
    half = pd.DataFrame({"confidence": [0.9, 0.5]})
    assert reg.predict(half) == pytest.approx(0.5, abs=0.05)


def test_unfitted_json_round_trip_and_measured_error():
    pools, labels = _pools()
    alone = fit_batch_regressor({CLEAN_CONDITION: pools[CLEAN_CONDITION]}, labels, 8, 2)
    assert not alone.fitted and "source_shifts" in alone.status
    row = alone.row(pd.DataFrame({"confidence": [0.5]}))
    assert row["method"] == BATCH_REGRESSOR and np.isnan(row["estimated_accuracy"])
    assert row["status"].startswith("skipped: ")
    assert not BatchRegressor.from_dict(None).fitted
    reg = fit_batch_regressor(pools, labels, 8, 4).measured(np.array([-2.0, 4.0]))
    assert (reg.measured_mae_points, reg.measured_max_error_points) == (3.0, 4.0)
    back = BatchRegressor.from_dict(json.loads(json.dumps(reg.as_dict())))
    assert back == reg
    unfitted = json.loads(json.dumps(alone.as_dict()))
    assert unfitted["intercept"] is None and not BatchRegressor.from_dict(unfitted).fitted
