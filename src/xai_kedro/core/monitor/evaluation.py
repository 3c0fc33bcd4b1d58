"""The monitor measured against its anchors on batches the project makes (issue 30's benchmark).

Each condition (clean, or one shift family / shift / severity) is profiled once on the held-out
test images (`ConditionPool`: the deployed model's per-image rows and the frozen-backbone
embeddings, aligned with the test images). Batches are then drawn from the pools: for each batch
size and seeded batch index one set of test images (with replacement only when the size exceeds
the test split), used clean, shifted under every condition and mixed (first half clean, second
half shifted), so every condition sees the same images. Each batch goes through the monitor's own
code (`batch_estimates`, `mmd_permutation_test`) and is compared with its labels: estimated minus
true accuracy per method, the drift test's decision, and the failure risk's AUROC for the images
being wrong (beside 1 - confidence's, the anchor). Pure numpy/pandas: the benchmark script does
the I/O and the model.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    """The monitor's settings in the benchmark: estimators, MMD permutations, level, seed."""

    estimators: tuple[str, ...]
    n_permutations: int = 200
    alpha: float = 0.05
    seed: int = 0


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


def evaluate_batch(
    plan: BatchPlan,
    pools: Mapping[Condition, ConditionPool],
    labels: np.ndarray,
    source: PredictionSet,
    calibration: Sequence[PredictionSet],
    reference: np.ndarray,
    settings: EvalSettings,
) -> tuple[dict, pd.DataFrame]:
    """(one batch row: true accuracy, drift test, AUROCs; one row per method: its estimate and
    its error against the true accuracy)."""
    profile, y, distinct = _gather(plan, pools, labels)
    wrong = (profile["pred"].to_numpy(dtype=np.int64) != y).astype(int)
    risk = profile["failure_risk"].to_numpy(dtype=float)
    target = PredictionSet.from_rows(profile, labelled=False)
    est = batch_estimates(source, calibration, target, settings.estimators, None, risk)
    seed = settings.seed + zlib.crc32(f"{plan.condition.key}|{plan.kind}".encode())
    drift = mmd_permutation_test(
        reference, distinct, settings.n_permutations, settings.alpha, seed=seed + plan.index
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
    methods = est.loc[est["estimated_accuracy"].notna(), ["method", "estimated_accuracy"]]
    methods = methods.assign(**{k: row[k] for k in ("kind", "group", "size", "batch")})
    methods["error"] = methods["estimated_accuracy"] - truth
    return row, methods.reset_index(drop=True)


def evaluate_batches(
    plans: Sequence[BatchPlan],
    pools: Mapping[Condition, ConditionPool],
    labels: np.ndarray,
    source: PredictionSet,
    calibration: Sequence[PredictionSet],
    reference: np.ndarray,
    settings: EvalSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per batch, one row per batch and method) over every plan."""
    rows, methods = [], []
    for plan in plans:
        row, est = evaluate_batch(plan, pools, labels, source, calibration, reference, settings)
        rows.append(row)
        methods.append(est.assign(shift=plan.condition.shift, severity=plan.condition.severity))
    return pd.DataFrame(rows), pd.concat(methods, ignore_index=True)


def estimator_summary(methods: pd.DataFrame) -> pd.DataFrame:
    """Per method, group (clean / family / mixture/family) and size: MAE, worst absolute error
    and mean signed error of estimated minus true accuracy, in points, over the batches."""
    err = methods.assign(abs_error=methods["error"].abs() * 100, signed=methods["error"] * 100)
    out = err.groupby(["method", "group", "size"], sort=True).agg(
        mae_points=("abs_error", "mean"),
        max_abs_error_points=("abs_error", "max"),
        bias_points=("signed", "mean"),
        n_batches=("error", "size"),
    )
    return out.reset_index()


def drift_summary(batches: pd.DataFrame) -> pd.DataFrame:
    """Per kind, family, shift, severity and size: the share of batches the MMD test flags at
    its alpha (the detection rate; on clean batches the false-alarm rate)."""
    keys = ["kind", "family", "shift", "severity", "size"]
    out = batches.groupby(keys, sort=True).agg(
        flagged_rate=("drift", "mean"), n_batches=("drift", "size")
    )
    return out.reset_index()


def auroc_summary(batches: pd.DataFrame) -> pd.DataFrame:
    """Per group and size: the mean per-batch AUROC of failure risk (and of 1 - confidence) for
    the image being wrong, over the batches that hold both right and wrong images."""
    out = batches.groupby(["group", "size"], sort=True).agg(
        risk_auroc=("risk_auroc", "mean"),
        confidence_auroc=("confidence_auroc", "mean"),
        n_batches=("risk_auroc", "count"),
    )
    return out.reset_index()
