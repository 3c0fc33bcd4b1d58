"""The meta-regressor's nearest honest form for one batch: a ridge line from the batch's mean XAI
profile and confidence to its accuracy, fitted on the deployed adapter's source-side shift batches.

Why not the adapter-level meta-regressor itself (`core.meta.adapters.estimation`): its input x_k
is the mean, spread and percentiles of one adapter's profile over *clean* test images, its
output is that adapter's accuracy under each of the run's named shift conditions, and it is
fitted across the zoo (one row per adapter). A monitored batch gives one profile of one adapter
on images of *unknown* shift: no training row ever held a shifted profile, the output that would
match the batch's condition does not exist, and the deployed adapter's own clean profile gives
one number whatever the batch holds. So here the rows are batches, not adapters: validation
images of the deployed adapter, clean and under each `ood.source_shifts` cell (a seeded share of
each batch shifted, the rest clean, so mixtures are seen), profiled by the deployed model; x is
the batch mean of every label-free XAI and confidence feature, y the batch's accuracy. Never the
test images. The fit is a standardised ridge in closed form, kept as JSON numbers (the catalog's
`monitor_batch_regressor`), so the monitor run applies it without a pickled model; its raw
prediction can leave [0, 1] and is clipped like every estimate (`core.monitor.estimates`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.prediction.features import CONFIDENCE_FEATURES, XAI_FEATURES
from xai_kedro.core.monitor.evaluation import CLEAN_CONDITION, Condition, ConditionPool

BATCH_REGRESSOR = "batch_regressor"
BATCH_REGRESSOR_LABEL = "Per-batch regressor (XAI + confidence means)"
BATCH_REGRESSOR_REFERENCE = "meta-regressor, per batch (docs/monitor.md)"


def profile_features(columns: Sequence[str]) -> list[str]:
    """The label-free XAI and confidence features a profile holds, in declaration order."""
    return [f for f in (*XAI_FEATURES, *CONFIDENCE_FEATURES) if f in columns]


def batch_features(profile: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The batch's mean of each feature (x of the regressor; images without a value skipped)."""
    return np.nanmean(profile[list(features)].to_numpy(dtype=np.float64), axis=0)


@dataclass(frozen=True)
class BatchRegressor:
    """A fitted (or, with ``status`` saying why not, an unfitted) per-batch regressor.

    measured_*: its error in points on the evaluation's held-out test batches (every group and
    size pooled), what the monitor prints beside its estimate; NaN until measured.
    """

    status: str
    features: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    coef: tuple[float, ...] = ()
    intercept: float = float("nan")
    n_batches: int = 0
    measured_mae_points: float = float("nan")
    measured_max_error_points: float = float("nan")
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fitted(self) -> bool:
        return self.status == "ok"

    def predict(self, profile: pd.DataFrame) -> float:
        """The raw (unclipped) estimated accuracy of the batch; NaN when not fitted."""
        if not self.fitted:
            return float("nan")
        x = (batch_features(profile, self.features) - np.asarray(self.mean)) / np.asarray(
            self.scale
        )
        return float(self.intercept + x @ np.asarray(self.coef))

    def row(self, profile: pd.DataFrame) -> dict[str, Any]:
        """Its row of the monitor's estimates (method, label, value, status, measured error)."""
        return {
            "method": BATCH_REGRESSOR,
            "label": BATCH_REGRESSOR_LABEL,
            "reference": BATCH_REGRESSOR_REFERENCE,
            "estimated_accuracy": self.predict(profile),
            "status": "ok" if self.fitted else f"skipped: {self.status}",
            "measured_mae_points": self.measured_mae_points,
            "measured_max_error_points": self.measured_max_error_points,
        }

    def measured(self, errors_points: np.ndarray) -> BatchRegressor:
        """The same regressor with its measured error (estimate minus truth, in points)."""
        err = np.abs(np.asarray(errors_points, dtype=np.float64))
        if err.size == 0:
            return self
        return replace(
            self, measured_mae_points=float(err.mean()), measured_max_error_points=float(err.max())
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as null)."""
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in
                asdict(self).items()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BatchRegressor:
        """Back from `as_dict` (None or an empty mapping: not fitted)."""
        if not data:
            return cls("no per-batch regressor in this run (monitor.evaluation.enabled)")
        values = {k: (float("nan") if v is None else v) for k, v in data.items()}
        for key in ("features", "mean", "scale", "coef"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values)


def fit_ridge(
    X: np.ndarray, y: np.ndarray, features: Sequence[str], alpha: float = 1.0
) -> BatchRegressor:
    """Standardised ridge regression in closed form (a constant feature gets scale 1)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y) or len(y) < 2:
        raise ValueError(f"need >= 2 aligned batches, got X {X.shape} and y {y.shape}")
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = (X - mean) / scale
    coef = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))
    return BatchRegressor(
        "ok", tuple(features), tuple(mean.tolist()), tuple(scale.tolist()),
        tuple(coef.tolist()), float(y.mean()), len(y),
    )  # fmt: skip


def training_batches(
    pools: Mapping[Condition, ConditionPool],
    labels: np.ndarray,
    size: int,
    n_batches: int,
    seed: int,
) -> tuple[list[pd.DataFrame], np.ndarray]:
    """Seeded source-side batches (profiles, accuracies): per condition and batch index, ``size``
    images of which a uniform share is shown under the condition and the rest clean."""
    clean, n = pools[CLEAN_CONDITION], len(labels)
    profiles, accuracy = [], []
    for cond in sorted(pools, key=lambda c: c.key):
        for index in range(n_batches):
            rng = np.random.default_rng([seed, index, zlib.crc32(cond.key.encode())])
            idx = rng.choice(n, size, replace=size > n)
            k = size if cond == CLEAN_CONDITION else int(round(rng.uniform() * size))
            profile = pd.concat(
                [pools[cond].profile.iloc[idx[:k]], clean.profile.iloc[idx[k:]]],
                ignore_index=True,
            )
            correct = profile["pred"].to_numpy() == labels[idx]
            profiles.append(profile)
            accuracy.append(float(correct.mean()))
    return profiles, np.asarray(accuracy)


def fit_batch_regressor(
    pools: Mapping[Condition, ConditionPool],
    labels: np.ndarray,
    size: int,
    n_batches: int,
    seed: int = 0,
) -> BatchRegressor:
    """The per-batch regressor fitted on the source-side pools (clean + `ood.source_shifts`)."""
    if len(pools) < 2:
        return BatchRegressor("no source-side shift to fit on (ood.source_shifts is empty)")
    features = profile_features(pools[CLEAN_CONDITION].profile.columns)
    if not features:
        return BatchRegressor("the profile has no XAI or confidence feature")
    profiles, y = training_batches(pools, np.asarray(labels), size, n_batches, seed)
    X = np.stack([batch_features(p, features) for p in profiles])
    return fit_ridge(X, y, features)
