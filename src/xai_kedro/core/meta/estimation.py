"""Per-adapter OOD accuracy estimation: seed 000's meta-regressor and label-free baselines.

Seed 000 (section 4.1) aggregates Silver features per adapter into a vector x_k and trains a
RandomForest regressor f with y_k^OOD = f(x_k). With a handful of adapters the only honest
evaluation is leave-one-adapter-out: adapter k is predicted by a model that never saw it.

Two published label-free estimators are the yardstick, both fitted on the clean (labelled) test
split and applied to the unlabelled corrupted predictions of the same adapter:
- ATC (Garg et al. 2022, "Leveraging unlabeled data to predict out-of-distribution
  performance"): pick t on the source so that the fraction of scores > t equals the source
  accuracy; predict the target accuracy as the fraction of target scores > t. Score = max
  softmax (ATC-MC) or negative predictive entropy (ATC-NE).
- DoC (Guillory et al. 2021, "Predicting with confidence on unseen distributions"):
  target accuracy = source accuracy - (mean source confidence - mean target confidence).

The core works on adapter level only, as specified; ``label_free_estimates`` also accepts finer
groupings (adapter, corruption, severity) for the two baselines. Using such rows as additional
regression samples would let one adapter appear in train and test, so it is not done here.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from xai_kedro.core.meta.features import XAI_SET, default_feature_sets, require_columns
from xai_kedro.core.meta.stats import as_binary

logger = logging.getLogger(__name__)

DEFAULT_ESTIMATION_PARAMS: dict[str, Any] = {
    # seed 000 names the model (RandomForest regressor) but no hyperparameters
    "regressor": {"n_estimators": 200, "min_samples_leaf": 1},
    "percentiles": [10, 50, 90],  # per-adapter feature percentiles (plus mean and std)
    "min_adapters": 3,  # leave-one-out needs >= 2 training adapters
    "include_confidence": True,  # regressor also sees clean accuracy and mean confidence
    "n_jobs": 1,
}

METHODS = ("meta_regressor", "atc", "atc_ne", "doc")
ESTIMATION_COLUMNS = (
    "adapter_id",
    "n_images",
    "n_ood_rows",
    "clean_accuracy",
    "measured_ood_accuracy",
    *(f"{m}_pred" for m in METHODS),
    *(f"{m}_abs_err" for m in METHODS),
)


def resolve_estimation_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults overlaid with ``params`` (the regressor dict is merged key by key)."""
    out = copy.deepcopy(DEFAULT_ESTIMATION_PARAMS)
    for key, value in (params or {}).items():
        if key not in out:
            raise ValueError(f"unknown estimation param {key!r}; known: {sorted(out)}")
        out[key] = {**out[key], **value} if key == "regressor" else copy.deepcopy(value)
    return out


def aggregate_adapter_features(
    silver_xai: pd.DataFrame,
    features: Sequence[str] | None = None,
    percentiles: Sequence[float] = (10, 50, 90),
) -> pd.DataFrame:
    """One row per adapter: mean, std, and percentiles of each feature over its clean images,
    plus clean accuracy, mean confidence and the image count (seed 000's x_k)."""
    if features is None:
        features = default_feature_sets(silver_xai)[XAI_SET]
    require_columns(silver_xai, ["adapter_id", "is_correct", "confidence", *features], "silver_xai")
    g = silver_xai.groupby("adapter_id", sort=True)
    parts: dict[str, pd.Series] = {
        "n_images": g.size(),
        "clean_accuracy": g["is_correct"].mean().astype(float),
        "mean_confidence": g["confidence"].mean(),
    }
    for f in features:
        parts[f"{f}_mean"] = g[f].mean()
        parts[f"{f}_std"] = g[f].std(ddof=1)
        for q in percentiles:
            parts[f"{f}_p{q:g}"] = g[f].quantile(q / 100.0)
    return pd.DataFrame(parts).rename_axis("adapter_id").reset_index()


def ood_accuracy_per_adapter(silver_ood: pd.DataFrame) -> pd.Series:
    """Mean OOD correctness per adapter over all corruptions and severities."""
    require_columns(silver_ood, ["adapter_id", "is_correct"], "silver_ood")
    acc = silver_ood.groupby("adapter_id", sort=True)["is_correct"].mean().astype(float)
    return acc.rename("ood_accuracy")


def ood_accuracy_by_condition(silver_ood: pd.DataFrame) -> pd.DataFrame:
    """OOD accuracy and row count per (adapter, corruption, severity)."""
    keys = ["adapter_id", "corruption", "severity"]
    require_columns(silver_ood, [*keys, "is_correct"], "silver_ood")
    g = silver_ood.groupby(keys, sort=True)
    out = pd.DataFrame({"accuracy": g["is_correct"].mean().astype(float), "n": g.size()})
    if "severity_value" in silver_ood.columns:
        out["severity_value"] = g["severity_value"].first()
    return out.reset_index()


def _finite(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN/inf values")
    return arr


def atc_threshold(source_score: Any, source_correct: Any) -> float:
    """Threshold t with #(source scores > t) = #correct, i.e. fraction above t = accuracy.

    Any t in [s_(n-k), s_(n-k+1)) works for sorted scores s and k correct samples; we take the
    lower end, s_(n-k) (-inf when every sample is correct). Ties at the boundary make the
    equality unreachable; the fraction above t is then a little below the accuracy.
    """
    s = np.sort(_finite(source_score, "source_score"))
    correct = as_binary(source_correct, "source_correct")
    if correct.shape != s.shape or not np.isfinite(correct).all():
        raise ValueError("source_correct must be finite 0/1 values, one per source score")
    k = int(round(correct.sum()))
    n = s.size
    t = float(s[n - k - 1]) if k < n else float("-inf")
    if 0 < k < n and s[n - k - 1] == s[n - k]:
        logger.debug("ATC: tie at the threshold; source fraction above t < accuracy")
    return t


def atc_predict(source_score: Any, source_correct: Any, target_score: Any) -> float:
    """ATC estimate of target accuracy: fraction of target scores above the source threshold."""
    t = atc_threshold(source_score, source_correct)
    return float((_finite(target_score, "target_score") > t).mean())


def doc_predict(source_confidence: Any, source_correct: Any, target_confidence: Any) -> float:
    """DoC estimate: source accuracy minus the drop in mean confidence from source to target."""
    src = _finite(source_confidence, "source_confidence")
    acc = as_binary(source_correct, "source_correct")
    if acc.shape != src.shape:
        raise ValueError("source_correct must have one value per source confidence")
    tgt = _finite(target_confidence, "target_confidence")
    return float(acc.mean() - (src.mean() - tgt.mean()))


def label_free_estimates(
    silver_xai: pd.DataFrame,
    silver_ood: pd.DataFrame,
    by: Sequence[str] = ("adapter_id",),
) -> pd.DataFrame:
    """Measured vs ATC-MC, ATC-NE and DoC accuracy per group of OOD rows (``by`` must start
    with adapter_id: each adapter's own clean predictions are its source)."""
    by = list(by)
    if not by or by[0] != "adapter_id":
        raise ValueError(f"'by' must start with 'adapter_id', got {by}")
    require_columns(silver_xai, ["adapter_id", "is_correct", "confidence"], "silver_xai")
    require_columns(silver_ood, [*by, "is_correct", "confidence"], "silver_ood")
    has_ne = "pred_entropy" in silver_xai.columns and "pred_entropy" in silver_ood.columns
    sources = dict(tuple(silver_xai.groupby("adapter_id", sort=False)))
    rows = []
    for key, tgt in silver_ood.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n_ood_rows"] = len(tgt)
        row["measured_ood_accuracy"] = float(tgt["is_correct"].mean())
        src = sources.get(key[0])
        if src is None:
            logger.warning("adapter %s has OOD rows but no clean rows; no ATC/DoC", key[0])
            row.update(atc_pred=np.nan, atc_ne_pred=np.nan, doc_pred=np.nan)
            rows.append(row)
            continue
        ok = src["is_correct"].to_numpy()
        row["atc_pred"] = atc_predict(src["confidence"], ok, tgt["confidence"])
        row["atc_ne_pred"] = (
            atc_predict(-src["pred_entropy"], ok, -tgt["pred_entropy"]) if has_ne else np.nan
        )
        row["doc_pred"] = doc_predict(src["confidence"], ok, tgt["confidence"])
        rows.append(row)
    return pd.DataFrame(rows)


def leave_one_adapter_out(
    X: np.ndarray, y: np.ndarray, params: Mapping[str, Any] | None = None, seed: int = 0
) -> np.ndarray:
    """Prediction for each row from a RandomForestRegressor fitted on all other rows.

    Fewer than ``min_adapters`` rows give NaN (with a warning): the regressor would learn from
    one adapter or none.
    """
    p = resolve_estimation_params(params)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape[0] != y.size:
        raise ValueError(f"X must be 2-D with one row per target, got {X.shape} and {y.shape}")
    pred = np.full(y.size, np.nan)
    if y.size < int(p["min_adapters"]):
        logger.warning(
            "accuracy estimation: %d adapters < min_adapters=%d; meta-regressor is NaN",
            y.size,
            p["min_adapters"],
        )
        return pred
    for i in range(y.size):
        others = np.arange(y.size) != i
        reg = RandomForestRegressor(random_state=seed, n_jobs=p["n_jobs"], **p["regressor"])
        reg.fit(X[others], y[others])
        pred[i] = float(reg.predict(X[i : i + 1])[0])
    return pred


def accuracy_estimation(
    silver_xai: pd.DataFrame,
    silver_ood: pd.DataFrame,
    features: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per adapter: measured OOD accuracy, leave-one-adapter-out meta-regressor, ATC-MC,
    ATC-NE and DoC predictions, and each method's absolute error in accuracy points (x100)."""
    p = resolve_estimation_params(params)
    agg = aggregate_adapter_features(silver_xai, features, p["percentiles"])
    baselines = label_free_estimates(silver_xai, silver_ood, by=("adapter_id",))
    missing = sorted(set(agg["adapter_id"]) ^ set(baselines["adapter_id"]))
    if missing:
        logger.warning("adapters %s are in only one of silver_xai/silver_ood; skipped", missing)
    df = agg.merge(baselines, on="adapter_id", how="inner").reset_index(drop=True)
    reg_cols = [c for c in agg.columns if c not in ("adapter_id", "n_images")]
    if not p["include_confidence"]:
        reg_cols = [c for c in reg_cols if c not in ("clean_accuracy", "mean_confidence")]
    df["meta_regressor_pred"] = leave_one_adapter_out(
        df[reg_cols].to_numpy(dtype=float), df["measured_ood_accuracy"].to_numpy(), p, seed
    )
    for m in METHODS:
        df[f"{m}_abs_err"] = (df[f"{m}_pred"] - df["measured_ood_accuracy"]).abs() * 100.0
    return df[list(ESTIMATION_COLUMNS)]
