"""The monitor measured against its anchors on batches the project makes (issue 30's benchmark).

Each condition (clean, or one shift family / shift / severity) is profiled once on the held-out
test images (`ConditionPool`: the deployed model's per-image rows and the frozen-backbone
embeddings, aligned with the test images). Batches are then drawn from the pools: for each batch
size and seeded batch index one set of test images (with replacement only when the size exceeds
the test split), used clean, shifted under every condition and mixed (first half clean, second
half shifted), so every condition sees the same images. Each batch goes through the monitor's own
code (`batch_estimates`, `mmd_permutation_test`) and is compared with its labels: estimated minus
true accuracy per method, the drift test's decision, and the failure risk's AUROC for the images
being wrong (beside 1 - confidence's, the anchor). Pure numpy/pandas: the callers (the deploy
pipeline's evaluation node, `benchmarks/monitor_eval.py`) read the tables and run the model
(`core.monitor.conditions`, `core.monitor.gold`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from xai_kedro.core.meta.adapters.estimators import PredictionSet
from xai_kedro.core.monitor.drift import mmd_permutation_test
from xai_kedro.core.monitor.estimates import batch_estimates

CLEAN = "clean"
KINDS = (CLEAN, "shifted", "mixture")


@dataclass(frozen=True)
class Condition:
    """One way the test images are shown: clean, or a (family, shift, severity) cell."""

    family: str
    shift: str
    severity: str

    @property
    def key(self) -> str:
        return CLEAN if self.family == CLEAN else f"{self.family}/{self.shift}/{self.severity}"


CLEAN_CONDITION = Condition(CLEAN, CLEAN, "none")


@dataclass(frozen=True)
class ConditionPool:
    """The test images under one condition: profile rows (pred, confidence, pred_entropy, logits,
    failure_risk) and embeddings [N, D], both aligned with the test images' order."""

    profile: pd.DataFrame
    embeddings: np.ndarray


@dataclass(frozen=True)
class BatchPlan:
    """One batch: its kind, the shifted condition (clean for clean batches), and its parts, each
    a condition and the test-image indices shown under it."""

    kind: str
    condition: Condition
    size: int
    index: int
    parts: tuple[tuple[Condition, np.ndarray], ...]
    with_replacement: bool

    @property
    def group(self) -> str:
        """The row label of the summaries: clean, the shift family, or mixture/<family>."""
        if self.kind == CLEAN:
            return CLEAN
        family = self.condition.family
        return family if self.kind == "shifted" else f"mixture/{family}"


def draw_images(n_images: int, size: int, index: int, seed: int) -> tuple[np.ndarray, bool]:
    """Seeded test-image indices of one batch (with replacement only when size > n_images)."""
    if n_images < 1 or size < 2:
        raise ValueError(f"need >= 1 test image and batches of >= 2, got {n_images}, {size}")
    rng = np.random.default_rng([seed, size, index])
    replace = size > n_images
    return rng.choice(n_images, size, replace=replace), replace


def plan_batches(
    conditions: Sequence[Condition], n_images: int, sizes: Sequence[int], n_batches: int, seed: int
) -> list[BatchPlan]:
    """Every batch of the benchmark: per size and batch index, one clean batch and, per shifted
    condition, a shifted and a mixed batch of the same images."""
    plans = []
    shifted = [c for c in conditions if c.family != CLEAN]
    for size in sizes:
        for index in range(n_batches):
            idx, replace = draw_images(n_images, size, index, seed)
            half = size // 2
            plans.append(
                BatchPlan(CLEAN, CLEAN_CONDITION, size, index, ((CLEAN_CONDITION, idx),), replace)
            )
            for cond in shifted:
                parts = ((cond, idx),)
                mixed = ((CLEAN_CONDITION, idx[:half]), (cond, idx[half:]))
                plans.append(BatchPlan("shifted", cond, size, index, parts, replace))
                plans.append(BatchPlan("mixture", cond, size, index, mixed, replace))
    return plans


@dataclass(frozen=True)
class EvalSettings:
    """The monitor's settings in the evaluation: estimators, MMD permutations, level, seed."""

    estimators: tuple[str, ...]
    n_permutations: int = 200
    alpha: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class EvalInputs:
    """What every batch of one evaluation shares: the condition pools and the test labels, the
    deployed adapter's source and calibration sets, the drift reference, the settings, and the
    per-batch regressor (an object with ``row(profile) -> dict``; None: no such row)."""

    pools: Mapping[Condition, ConditionPool]
    labels: np.ndarray
    source: PredictionSet
    calibration: Sequence[PredictionSet]
    reference: np.ndarray
    settings: EvalSettings
    regressor: Any = None


# The Gold table `monitor_evaluation`: one row per (batch, method).
BATCH_COLUMNS = (
    "kind",
    "group",
    "family",
    "shift",
    "severity",
    "size",
    "batch",
    "with_replacement",
    "true_accuracy",
    "p_value",
    "drift",
    "n_drift_rows",
    "risk_auroc",
    "confidence_auroc",
)
METHOD_COLUMNS = (
    "method",
    "estimated_accuracy",
    "raw_estimate",
    "error_points",
    "raw_error_points",
)
EVALUATION_COLUMNS = ("adapter_id", *BATCH_COLUMNS, *METHOD_COLUMNS)
ESTIMATOR_ERROR_COLUMNS = (
    "method",
    "group",
    "size",
    "mae_points",
    "max_abs_error_points",
    "bias_points",
    "raw_mae_points",
    "raw_max_abs_error_points",
    "n_batches",
)
DRIFT_COLUMNS = ("kind", "family", "shift", "severity", "size", "flagged_rate", "n_batches")
AUROC_COLUMNS = ("group", "size", "risk_auroc", "confidence_auroc", "n_batches")


def _gather(
    plan: BatchPlan, pools: Mapping[Condition, ConditionPool], labels: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(the batch's profile rows, their labels, the embeddings of its distinct rows)."""
    frames, embeddings = [], []
    for cond, idx in plan.parts:
        frames.append(pools[cond].profile.iloc[idx])
        distinct = np.unique(idx)
        embeddings.append(pools[cond].embeddings[distinct])
    y = np.concatenate([labels[idx] for _, idx in plan.parts])
    return pd.concat(frames, ignore_index=True), y, np.vstack(embeddings)


def _auroc(wrong: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(wrong, score)) if 0 < wrong.sum() < len(wrong) else np.nan


def evaluate_batch(plan: BatchPlan, inputs: EvalInputs) -> tuple[dict, pd.DataFrame]:
    """(one batch row: true accuracy, drift test, AUROCs; one row per method: its estimate,
    clipped to [0, 1] and raw, and their errors against the true accuracy in points)."""
    settings = inputs.settings
    profile, y, distinct = _gather(plan, inputs.pools, inputs.labels)
    wrong = (profile["pred"].to_numpy(dtype=np.int64) != y).astype(int)
    risk = profile["failure_risk"].to_numpy(dtype=float)
    target = PredictionSet.from_rows(profile, labelled=False)
    extra = [inputs.regressor.row(profile)] if inputs.regressor is not None else ()
    est = batch_estimates(
        inputs.source, inputs.calibration, target, settings.estimators, None, risk, extra
    )
    seed = settings.seed + zlib.crc32(f"{plan.condition.key}|{plan.kind}".encode())
    drift = mmd_permutation_test(
        inputs.reference, distinct, settings.n_permutations, settings.alpha, seed=seed + plan.index
    )
    truth = float(1.0 - wrong.mean())
    row = {
        "kind": plan.kind,
        "group": plan.group,
        "family": plan.condition.family,
        "shift": plan.condition.shift,
        "severity": plan.condition.severity,
        "size": plan.size,
        "batch": plan.index,
        "with_replacement": plan.with_replacement,
        "true_accuracy": truth,
        "p_value": drift.p_value,
        "drift": drift.drift,
        "n_drift_rows": drift.n_batch,
        "risk_auroc": _auroc(wrong, risk),
        "confidence_auroc": _auroc(wrong, -profile["confidence"].to_numpy(dtype=float)),
    }
    methods = est.loc[est["estimated_accuracy"].notna(), list(METHOD_COLUMNS[:3])]
    methods = methods.assign(**{k: row[k] for k in ("kind", "group", "size", "batch")})
    methods["error_points"] = (methods["estimated_accuracy"] - truth) * 100.0
    methods["raw_error_points"] = (methods["raw_estimate"] - truth) * 100.0
    return row, methods.reset_index(drop=True)


def evaluate_batches(
    plans: Sequence[BatchPlan], inputs: EvalInputs
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per batch, one row per batch and method) over every plan."""
    rows, methods = [], []
    for plan in plans:
        row, est = evaluate_batch(plan, inputs)
        rows.append(row)
        methods.append(est.assign(shift=plan.condition.shift, severity=plan.condition.severity))
    return pd.DataFrame(rows), pd.concat(methods, ignore_index=True)


def evaluation_table(batches: pd.DataFrame, methods: pd.DataFrame, adapter_id: str) -> pd.DataFrame:
    """The Gold table `monitor_evaluation`: every method row beside its batch's row."""
    keys = ["kind", "group", "shift", "severity", "size", "batch"]
    if batches.empty:
        return pd.DataFrame(columns=list(EVALUATION_COLUMNS))
    out = methods.merge(batches, on=keys, how="left", validate="many_to_one")
    out = out.assign(adapter_id=adapter_id).reindex(columns=list(EVALUATION_COLUMNS))
    return out.sort_values([*keys, "method"], kind="stable", ignore_index=True)


def estimator_summary(methods: pd.DataFrame) -> pd.DataFrame:
    """Per method, group (clean / family / mixture/family) and size: MAE, worst absolute error
    and mean signed error of estimated minus true accuracy, in points, over the batches; the MAE
    and worst error of the raw (unclipped) estimate beside them."""
    if methods.empty:
        return pd.DataFrame(columns=list(ESTIMATOR_ERROR_COLUMNS))
    err = methods.assign(
        abs_error=methods["error_points"].abs(), raw_abs=methods["raw_error_points"].abs()
    )
    out = err.groupby(["method", "group", "size"], sort=True).agg(
        mae_points=("abs_error", "mean"),
        max_abs_error_points=("abs_error", "max"),
        bias_points=("error_points", "mean"),
        raw_mae_points=("raw_abs", "mean"),
        raw_max_abs_error_points=("raw_abs", "max"),
        n_batches=("error_points", "size"),
    )
    return out.reset_index().reindex(columns=list(ESTIMATOR_ERROR_COLUMNS))


def drift_summary(batches: pd.DataFrame) -> pd.DataFrame:
    """Per kind, family, shift, severity and size: the share of batches the MMD test flags at
    its alpha (the detection rate; on clean batches the false-alarm rate)."""
    if batches.empty:
        return pd.DataFrame(columns=list(DRIFT_COLUMNS))
    keys = ["kind", "family", "shift", "severity", "size"]
    out = batches.groupby(keys, sort=True).agg(
        flagged_rate=("drift", "mean"), n_batches=("drift", "size")
    )
    return out.reset_index().reindex(columns=list(DRIFT_COLUMNS))


def auroc_summary(batches: pd.DataFrame) -> pd.DataFrame:
    """Per group and size: the mean per-batch AUROC of failure risk (and of 1 - confidence) for
    the image being wrong, over the batches that hold both right and wrong images."""
    if batches.empty:
        return pd.DataFrame(columns=list(AUROC_COLUMNS))
    out = batches.groupby(["group", "size"], sort=True).agg(
        risk_auroc=("risk_auroc", "mean"),
        confidence_auroc=("confidence_auroc", "mean"),
        n_batches=("risk_auroc", "count"),
    )
    return out.reset_index().reindex(columns=list(AUROC_COLUMNS))
