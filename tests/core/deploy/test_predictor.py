"""The failure predictor's JSON reproduces the fitted scikit-learn / XGBoost model exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.core.deploy.helpers import FEATURES, fitted_predictor
from xai_kedro.core.common.registry import UnknownNameError
from xai_kedro.core.deploy.predictor import FailurePredictor, export_predictor
from xai_kedro.core.meta.prediction.learners import make_model


def _round_trip(pipeline, kind: str) -> FailurePredictor:
    data = export_predictor(pipeline, kind, FEATURES, {"model": "m"})
    assert b"pickle" not in data
    return FailurePredictor.from_bytes(data)


@pytest.mark.parametrize("kind", ["logistic_regression", "random_forest", "xgboost"])
def test_exported_predictor_equals_the_fitted_pipeline_on_new_data(kind):
    pipeline, _ = fitted_predictor(kind)
    predictor = _round_trip(pipeline, kind)
    X = np.random.default_rng(5).normal(scale=2.0, size=(500, len(FEATURES)))
    expected = pipeline.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(predictor.prob_correct(X), expected)
    np.testing.assert_array_equal(predictor.failure_risk(X), 1.0 - expected)
    assert predictor.features == FEATURES and predictor.info == {"model": "m"}


def test_forest_of_the_reference_settings_matches_exactly():
    """The reference RandomForest (depth 12, balanced classes); one thread sums the trees in
    order, as the exported evaluator does."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, len(FEATURES)))
    y = (X[:, 1] * X[:, 2] + rng.normal(size=400) > 0).astype(int)
    hp = {"estimator": "random_forest", "n_estimators": 25, "max_depth": 12,
          "class_weight": "balanced"}  # fmt: skip
    pipeline = make_model("RandomForest", hp, seed=3, n_jobs=1).fit(X, y)
    predictor = _round_trip(pipeline, "random_forest")
    X_new = rng.normal(size=(300, len(FEATURES)))
    np.testing.assert_array_equal(
        predictor.prob_correct(X_new), pipeline.predict_proba(X_new)[:, 1]
    )


def test_frame_risk_reads_the_feature_columns_by_name():
    import pandas as pd

    pipeline, X = fitted_predictor()
    predictor = _round_trip(pipeline, "logistic_regression")
    frame = pd.DataFrame(X[:, ::-1], columns=list(FEATURES)[::-1]).assign(extra=1.0)
    np.testing.assert_array_equal(predictor.frame_risk(frame), predictor.failure_risk(X))
    with pytest.raises(ValueError, match="needs columns"):
        predictor.frame_risk(frame.drop(columns=[FEATURES[0]]))


def test_json_holds_numbers_only_and_unknown_kinds_are_refused():
    pipeline, _ = fitted_predictor("logistic_regression")
    payload = json.loads(export_predictor(pipeline, "logistic_regression", FEATURES))
    assert payload["kind"] == "logistic_regression" and len(payload["model"]["coef"]) == len(
        FEATURES
    )
    with pytest.raises(UnknownNameError, match="known: logistic_regression"):
        export_predictor(pipeline, "svm", FEATURES)
    with pytest.raises(ValueError, match="feature names"):
        export_predictor(pipeline, "logistic_regression", FEATURES[:3])
