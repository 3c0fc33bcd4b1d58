"""Per-batch estimated accuracy of the deployed adapter, from every registered label-free
estimator and the CBPE-style anchor, each beside its error as measured on the project's shifts.

The estimators are the run's (`core.meta.adapters.estimators.ESTIMATORS`), calibrated exactly as
in the Gold table `accuracy_estimation`: the source is the adapter's clean validation split
(`silver_source`, `corruption == clean`), and the calibrated ones (nuclear norm, MaNo) fit their
line on the clean source plus every source-side shift. The batch's shift is unknown, so no
corruption is left out of that line (the Gold table leaves the target's out). Agreement on the
line needs the whole zoo on the batch and is reported as skipped for a single deployed adapter.
The measured error of a method is the run's `accuracy_estimation_summary` on the pooled shift
(`all`): mean and worst absolute error in accuracy points over adapters (the per-batch regressor
carries its own, measured on the evaluation's test batches).

Every estimate is reported clipped to [0, 1] (`estimated_accuracy`): an accuracy outside it is
impossible, and MaNo or a calibrated line can give one. The method's own value stays beside it
(`raw_estimate`), so its error stays visible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters.estimation import OVERALL
from xai_kedro.core.meta.adapters.estimators import ESTIMATORS, PredictionSet
from xai_kedro.core.meta.prediction.features import require_columns
from xai_kedro.core.monitor.cbpe import CBPE, CBPE_LABEL, CBPE_REFERENCE, IsotonicCalibration

FAILURE_PREDICTOR = "failure_predictor"
ESTIMATE_COLUMNS = (
    "method",
    "label",
    "reference",
    "estimated_accuracy",
    "raw_estimate",
    "measured_mae_points",
    "measured_max_error_points",
    "status",
    "n_images",
)
PREDICTION_COLUMNS = ("image_id", "pred", "confidence", "pred_entropy")


def source_sets(
    silver_source: pd.DataFrame, adapter_id: str, clean_shift: str = "clean"
) -> tuple[PredictionSet, list[PredictionSet]]:
    """(the adapter's clean labelled source, its calibration sets: the clean source first, then
    one per source-side (corruption, severity), in sorted order)."""
    require_columns(
        silver_source,
        ["adapter_id", "corruption", "severity", "label", *PREDICTION_COLUMNS],
        "silver_source",
    )
    rows = silver_source[silver_source["adapter_id"] == adapter_id]
    clean = rows["corruption"] == clean_shift
    if not clean.any():
        raise ValueError(
            f"silver_source has no {clean_shift!r} rows for adapter {adapter_id!r}: "
            "the monitor calibrates on the deployed adapter's validation split"
        )
    order = ["corruption", "severity", "image_id"]
    source = PredictionSet.from_rows(rows[clean].sort_values("image_id", kind="stable"))
    shifted = rows[~clean].sort_values(order, kind="stable")
    calibration = [
        PredictionSet.from_rows(group)
        for _, group in shifted.groupby(["corruption", "severity"], sort=True)
    ]
    return source, [source, *calibration]


def measured_errors(summary: pd.DataFrame | None, shift: str = OVERALL) -> pd.DataFrame:
    """method -> measured MAE and worst absolute error (points) on ``shift`` of the run's
    `accuracy_estimation_summary` (an empty frame when there is none)."""
    columns = ["measured_mae_points", "measured_max_error_points"]
    if summary is None or summary.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="method"))
    require_columns(summary, ["method", "shift", "mae_points", "max_abs_error_points"], "summary")
    rows = summary[summary["shift"] == shift].drop_duplicates("method").set_index("method")
    return rows[["mae_points", "max_abs_error_points"]].set_axis(columns, axis=1)


def _row(method: str, label: str, reference: str, value: float, status: str) -> dict:
    return {
        "method": method,
        "label": label,
        "reference": reference,
        "estimated_accuracy": value,
        "status": status,
    }


def _estimator_rows(
    source: PredictionSet,
    calibration: Sequence[PredictionSet],
    target: PredictionSet,
    names: Sequence[str],
) -> list[dict]:
    rows = []
    for name in names:
        est = ESTIMATORS.get(name)
        status, value = "ok", np.nan
        if est.zoo:
            status = "skipped: needs every adapter of the zoo on the batch"
        elif est.needs_logits and (target.logits is None or source.logits is None):
            status = "skipped: no logits"
        elif est.needs_calibration and len(calibration) < 2:
            status = "skipped: fewer than 2 calibration sets (ood.source_shifts)"
        else:
            value = float(est.fn(source, target, calibration))
        rows.append(_row(name, est.label, est.reference, value, status))
    return rows


def clip_estimates(rows: pd.DataFrame) -> pd.DataFrame:
    """``estimated_accuracy`` clipped to [0, 1], the method's own value kept as ``raw_estimate``."""
    raw = rows["estimated_accuracy"].astype(float)
    return rows.assign(raw_estimate=raw, estimated_accuracy=raw.clip(0.0, 1.0))


def _with_measured(out: pd.DataFrame, summary: pd.DataFrame | None) -> pd.DataFrame:
    """The summary's measured errors, where a row does not carry its own."""
    measured = measured_errors(summary)
    for column in measured.columns:
        mapped = out["method"].map(measured[column]).astype(float)
        out[column] = out[column].fillna(mapped) if column in out else mapped
    return out


def batch_estimates(
    source: PredictionSet,
    calibration: Sequence[PredictionSet],
    target: PredictionSet,
    estimators: Sequence[str],
    summary: pd.DataFrame | None = None,
    failure_risk: np.ndarray | None = None,
    extra: Sequence[dict] = (),
) -> pd.DataFrame:
    """One row per method: the batch's estimated accuracy (clipped to [0, 1], the raw value
    beside it) and the method's measured error.

    ``target``: the deployed adapter's predictions on the batch (no labels). ``failure_risk``
    adds the deployed failure predictor's 1 - mean risk (its accuracy error is not in the
    summary, which measures accuracy estimators only). ``extra``: rows computed elsewhere (the
    per-batch regressor's), appended as they are.
    """
    rows = _estimator_rows(source, calibration, target, estimators)
    cbpe = IsotonicCalibration(source.confidence, source.correct).estimate(target.confidence)
    rows.append(_row(CBPE, CBPE_LABEL, CBPE_REFERENCE, cbpe, "ok"))
    if failure_risk is not None:
        value = float(1.0 - np.mean(failure_risk))
        rows.append(
            _row(FAILURE_PREDICTOR, "1 - mean failure risk", "deployed predictor", value, "ok")
        )
    out = _with_measured(clip_estimates(pd.DataFrame([*rows, *extra])), summary)
    out["n_images"] = len(target.confidence)
    return out.reindex(columns=list(ESTIMATE_COLUMNS)).reset_index(drop=True)
