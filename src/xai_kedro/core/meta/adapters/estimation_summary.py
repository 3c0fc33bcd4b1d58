"""The comparison table of per-adapter OOD accuracy estimators: MAE and max error in accuracy
points and rank correlation with the measured accuracy, per corruption and overall, each with a
bootstrap interval that resamples whole config families."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from xai_kedro.core.meta.adapters.estimation import (
    META_REGRESSOR,
    METHOD_LABELS,
    METHODS,
    SUMMARY_LEVELS,
    overall_first,
)
from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.prediction.features import require_columns

SUMMARY_COLUMNS = (
    "method",
    "label",
    "shift",
    "level",
    "n_adapters",
    "n_families",
    "mae_points",
    "mae_ci_low",
    "mae_ci_high",
    "max_abs_error_points",
    "max_abs_error_ci_low",
    "max_abs_error_ci_high",
    "spearman_rho",
    "spearman_ci_low",
    "spearman_ci_high",
    "mae_minus_meta_points",
    "mae_minus_meta_ci_low",
    "mae_minus_meta_ci_high",
)


def _rank_corr(pred: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Spearman's rho per row (Pearson's r of the average ranks; NaN where a side is constant)."""
    a, b = sps.rankdata(pred, axis=-1), sps.rankdata(measured, axis=-1)
    a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    constant = (np.ptp(pred, axis=-1) == 0) | (np.ptp(measured, axis=-1) == 0)
    return np.where(constant, np.nan, rho)


# score name (prefix of its interval columns) -> column of the point estimate, in _scores order
_SCORE_COLUMNS = {
    "mae": "mae_points",
    "max_abs_error": "max_abs_error_points",
    "spearman": "spearman_rho",
    "mae_minus_meta": "mae_minus_meta_points",
}


def _scores(pred: np.ndarray, meta: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """[..., 4]: MAE, max error, Spearman rho, MAE minus the meta-regressor's, per row of
    [replicates, adapters] arrays (one bootstrap replicate per row)."""
    err = np.abs(pred - measured) * 100.0
    mae = err.mean(-1)
    meta_mae = np.abs(meta - measured).mean(-1) * 100.0
    return np.stack([mae, err.max(-1), _rank_corr(pred, measured), mae - meta_mae], axis=-1)


def _summary_row(
    method: str,
    shift: str,
    group: pd.DataFrame,
    meta: pd.DataFrame,
    settings: EstimationSettings,
    seed: int,
) -> dict[str, Any]:
    """One method on one shift: its scores against the measured accuracy, with intervals."""
    g = group.dropna(subset=["predicted_accuracy", "measured_accuracy"])
    g = g.sort_values("adapter_id")
    row: dict[str, Any] = {
        "method": method,
        "label": METHOD_LABELS.get(method, method),
        "shift": shift,
        "level": group["level"].iloc[0],
        "n_adapters": len(g),
        "n_families": g["family"].nunique(),
    }
    if len(g) == 0:
        return row
    pred, y = g["predicted_accuracy"].to_numpy(), g["measured_accuracy"].to_numpy()
    key = pd.MultiIndex.from_arrays([[shift] * len(g), g["adapter_id"]])
    ref = meta["predicted_accuracy"].reindex(key).to_numpy(dtype=float)
    point = _scores(pred[None], ref[None], y[None])[0]
    ci_low = ci_high = np.full(4, np.nan)
    if len(g) >= 2:
        families = g["family"].to_numpy()
        ci_low, ci_high = settings.resampling(seed).interval(
            _scores, pred, ref, y, groups=families, vectorized=True
        )
    for i, (name, value) in enumerate(_SCORE_COLUMNS.items()):
        row[value] = point[i]
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci_low[i], ci_high[i]
    return row


def estimation_summary(
    estimation: pd.DataFrame,
    settings: EstimationSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (method, shift): MAE, max abs error (points) and Spearman rho with the measured
    accuracy, and MAE minus the meta-regressor's MAE on the same adapters (negative = the
    method beats it), each with a percentile bootstrap interval over adapters in which whole
    families are resampled (siblings are not independent)."""
    p = settings or EstimationSettings()
    require_columns(
        estimation,
        ["adapter_id", "family", "method", "shift", "level", "predicted_accuracy"],
        "accuracy_estimation",
    )
    est = estimation[estimation["level"].isin(SUMMARY_LEVELS)]
    meta = est[est["method"] == META_REGRESSOR].set_index(["shift", "adapter_id"])
    rows = [
        _summary_row(method, shift, group, meta, p, seed)
        for (method, shift), group in est.groupby(["method", "shift"], sort=False)
    ]
    out = pd.DataFrame(rows).reindex(columns=list(SUMMARY_COLUMNS))
    return overall_first(out, {m: i for i, m in enumerate(METHODS)})
