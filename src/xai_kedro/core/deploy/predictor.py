"""The failure predictor in a safe format: JSON that reproduces the fitted model exactly.

A meta-learner of `core.meta.prediction` is a `StandardScaler` + estimator pipeline predicting
``is_correct`` (OOD correctness) from label-free clean-image features. To ship it inside a model
without pickle, each estimator kind has an exporter (the `EXPORTERS` registry, keyed like the
`LEARNERS` registry) that writes its fitted numbers to JSON, and `FailurePredictor` evaluates
them with the same floating-point operations as scikit-learn / XGBoost, so the served scores
equal the fitted model's:

- logistic_regression: scaler + coefficients + intercept, ``expit(X @ coef.T + b)``;
- random_forest: every tree's arrays (children, feature, threshold, leaf class fractions),
  features cast to float32 as scikit-learn does, trees summed in order, divided by their count;
- xgboost: the booster's own JSON (``save_raw("json")``), loaded back by XGBoost.

Failure risk = 1 - P(correct).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from xai_kedro.core.common.registry import Registry

PREDICTOR_FORMAT = 1
# exporter(fitted estimator) -> JSON-ready dict of its numbers
Exporter = Callable[[Any], dict[str, Any]]
# evaluator(exported dict) -> scores(X standardised, float64) -> P(correct)
Evaluator = Callable[[dict[str, Any]], Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class PredictorKind:
    """How one estimator kind is written to JSON and evaluated from it."""

    export: Exporter
    evaluator: Evaluator


EXPORTERS: Registry[PredictorKind] = Registry(
    "failure-predictor format",
    setting="meta_learning.meta_learners.models.<model>.estimator",
    hint="only these estimators can be deployed without pickle",
)


def register_exporter(name: str, export: Exporter, evaluator: Evaluator) -> None:
    """Declare how the `LEARNERS` kind `name` is exported to JSON and evaluated."""
    EXPORTERS.register(name, PredictorKind(export, evaluator))


# ------------------------------------------------------------------ logistic regression
def _export_logistic(clf: Any) -> dict[str, Any]:
    if len(clf.classes_) != 2:
        raise ValueError("the failure predictor is binary; got classes " + str(clf.classes_))
    return {"coef": clf.coef_.ravel().tolist(), "intercept": float(clf.intercept_[0])}


def _logistic(model: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    coef = np.asarray(model["coef"], dtype=np.float64).reshape(1, -1)
    intercept = np.asarray([model["intercept"]], dtype=np.float64)

    def scores(X: np.ndarray) -> np.ndarray:
        # sklearn: safe_sparse_dot(X, coef_.T) + intercept_, raveled, then expit
        return expit((X @ coef.T + intercept).ravel())

    return scores


# ------------------------------------------------------------------ random forest
def _export_forest(forest: Any) -> dict[str, Any]:
    if forest.n_outputs_ != 1 or len(forest.classes_) != 2:
        raise ValueError("the failure predictor is a binary, single-output forest")
    trees = []
    for estimator in forest.estimators_:
        tree = estimator.tree_
        value = tree.value[:, 0, :]
        trees.append(
            {
                "left": tree.children_left.tolist(),
                "right": tree.children_right.tolist(),
                "feature": tree.feature.tolist(),
                "threshold": tree.threshold.tolist(),
                "value": value.tolist(),
            }
        )
    return {"trees": trees}


def _tree_leaves(tree: dict[str, np.ndarray], X32: np.ndarray) -> np.ndarray:
    """The leaf each row reaches (sklearn: go left when X[f] <= threshold, X in float32)."""
    node = np.zeros(X32.shape[0], dtype=np.int64)
    rows = np.arange(X32.shape[0])
    left, right, feature, threshold = (
        tree["left"],
        tree["right"],
        tree["feature"],
        tree["threshold"],
    )
    active = left[node] != -1
    while active.any():
        idx = rows[active]
        at = node[idx]
        go_left = X32[idx, feature[at]].astype(np.float64) <= threshold[at]
        node[idx] = np.where(go_left, left[at], right[at])
        active = left[node] != -1
    return node


def _forest(model: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    trees = [
        {
            "left": np.asarray(t["left"], dtype=np.int64),
            "right": np.asarray(t["right"], dtype=np.int64),
            "feature": np.asarray(t["feature"], dtype=np.int64),
            "threshold": np.asarray(t["threshold"], dtype=np.float64),
            "value": np.asarray(t["value"], dtype=np.float64),
        }
        for t in model["trees"]
    ]

    def scores(X: np.ndarray) -> np.ndarray:
        X32 = np.asarray(X, dtype=np.float32)
        total = np.zeros((X32.shape[0], 2), dtype=np.float64)
        for tree in trees:  # in order: what the forest sums with n_jobs=1
            total += tree["value"][_tree_leaves(tree, X32)]
        total /= len(trees)
        return total[:, 1]

    return scores


# ------------------------------------------------------------------ xgboost
def _export_xgboost(clf: Any) -> dict[str, Any]:
    if clf.n_classes_ != 2:
        raise ValueError("the failure predictor is binary; got classes " + str(clf.classes_))
    return {"booster_json": bytes(clf.get_booster().save_raw("json")).decode("utf-8")}


def _xgboost(model: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    from xgboost import XGBClassifier

    clf = XGBClassifier()
    clf.load_model(bytearray(model["booster_json"].encode("utf-8")))

    def scores(X: np.ndarray) -> np.ndarray:
        return clf.predict_proba(X)[:, 1]

    return scores


register_exporter("logistic_regression", _export_logistic, _logistic)
register_exporter("random_forest", _export_forest, _forest)
register_exporter("xgboost", _export_xgboost, _xgboost)


# ------------------------------------------------------------------ the predictor
def export_predictor(
    pipeline: Any, kind: str, features: Sequence[str], info: dict[str, Any] | None = None
) -> bytes:
    """A fitted scaler + estimator pipeline (`make_model`) -> the predictor's JSON bytes.

    `kind` is the estimator's `LEARNERS` name; `info` (JSON-ready) records why this predictor
    was chosen (model, feature set, AUC)."""
    spec = EXPORTERS.get(kind)
    scaler, estimator = pipeline.named_steps["scaler"], pipeline.named_steps["clf"]
    if list(estimator.classes_) != [0, 1]:
        raise ValueError(f"the failure predictor needs classes [0, 1], got {estimator.classes_}")
    payload = {
        "format_version": PREDICTOR_FORMAT,
        "kind": kind,
        "features": list(features),
        "target": "is_correct",
        "scaler": {
            "mean": scaler.mean_.tolist() if scaler.with_mean else None,
            "scale": scaler.scale_.tolist() if scaler.with_std else None,
        },
        "model": spec.export(estimator),
        "info": info or {},
    }
    if len(features) != int(scaler.n_features_in_):
        raise ValueError(f"{len(features)} feature names for {scaler.n_features_in_} features")
    return json.dumps(payload, allow_nan=False).encode("utf-8")


class FailurePredictor:
    """P(correct) and failure risk from the feature columns, evaluated from the JSON alone."""

    def __init__(self, payload: dict[str, Any]) -> None:
        if payload.get("format_version") != PREDICTOR_FORMAT:
            raise ValueError(f"unknown failure-predictor format {payload.get('format_version')}")
        self.kind: str = payload["kind"]
        self.features: tuple[str, ...] = tuple(payload["features"])
        self.info: dict[str, Any] = dict(payload.get("info") or {})
        scaler = payload["scaler"]
        self._mean = None if scaler["mean"] is None else np.asarray(scaler["mean"], np.float64)
        self._scale = None if scaler["scale"] is None else np.asarray(scaler["scale"], np.float64)
        self._scores = EXPORTERS.get(self.kind).evaluator(payload["model"])

    @classmethod
    def from_bytes(cls, data: bytes) -> FailurePredictor:
        return cls(json.loads(data.decode("utf-8")))

    def _standardised(self, X: Any) -> np.ndarray:
        X = np.array(X, dtype=np.float64, order="C")  # a copy, standardised in place as in sklearn
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected [n, {len(self.features)}] features, got {X.shape}")
        if self._mean is not None:
            X -= self._mean
        if self._scale is not None:
            X /= self._scale
        return X

    def prob_correct(self, X: Any) -> np.ndarray:
        """P(is_correct) per row: the fitted pipeline's ``predict_proba(X)[:, 1]``."""
        return self._scores(self._standardised(X))

    def failure_risk(self, X: Any) -> np.ndarray:
        """1 - P(correct): the probability that the prediction is wrong under a shift."""
        return 1.0 - self.prob_correct(X)

    def frame_risk(self, frame: Any) -> np.ndarray:
        """Failure risk of a DataFrame holding (at least) the feature columns."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"the failure predictor needs columns {missing}")
        return self.failure_risk(frame[list(self.features)].to_numpy(dtype=np.float64))
