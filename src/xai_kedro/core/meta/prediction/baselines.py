"""Does XAI add anything a reviewer's confidence baseline does not already know?

Ranks the OOD predictions by how likely they are correct, with every label-free score a reviewer
expects on the clean image (max-softmax, margin, predictive entropy, energy) used directly, and
with the meta-learners' image-grouped out-of-fold scores for the confidence, XAI and combined
feature sets. Each gets AUROC, AURC and AUGRC with image-clustered bootstrap intervals; paired
differences (same resamples) answer "XAI + confidence vs confidence" and "XAI vs confidence".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from xai_kedro.core.meta.prediction.features import (
    CONFIDENCE_FEATURES,
    CONFIDENCE_SET,
    GROUP,
    TARGET,
    XAI_CONFIDENCE_SET,
    XAI_SET,
    require_columns,
)
from xai_kedro.core.meta.stats.association import roc_auc
from xai_kedro.core.meta.stats.bootstrap import Resampling, paired_replicates, percentile_interval
from xai_kedro.core.meta.stats.risk import (
    RANKING_METRICS,
    augrc,
    aurc,
    fd_shifts_areas,
    weighted_ranking_metrics,
)


class ConfidenceScore(NamedTuple):
    """How a confidence column is used directly: its method name in the tables and its
    direction (+1: a higher value means a more likely correct prediction; -1: lower does)."""

    label: str
    direction: int


# One entry per confidence column (`CONFIDENCE_FEATURES`), so a label never lacks a direction.
CONFIDENCE_SCORES: dict[str, ConfidenceScore] = {
    "confidence": ConfidenceScore("max-softmax", 1),
    "margin": ConfidenceScore("margin", 1),
    "pred_entropy": ConfidenceScore("predictive entropy", -1),
    "energy": ConfidenceScore("energy", -1),
}


def learned_method(set_name: str) -> str:
    """Method name of a meta-learner on a feature set (distinct from the raw scores' names)."""
    return f"meta:{set_name}"


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": roc_auc,
    "aurc": aurc,
    "augrc": augrc,
}
BASELINE_COLUMNS = (
    "method",
    "kind",
    "model",
    *(f"{m}{suffix}" for m in METRICS for suffix in ("", "_ci_low", "_ci_high")),
    # the same areas in fd-shifts' convention (trapezoid between the curve's points), point only
    "aurc_fd_shifts",
    "augrc_fd_shifts",
    "n",
    "n_images",
)
DIFFERENCE_COLUMNS = (
    "comparison",
    "model",
    *(f"{m}_diff{suffix}" for m in METRICS for suffix in ("", "_ci_low", "_ci_high")),
    "n",
    "n_images",
)


def _check_directions() -> None:
    missing = sorted(set(CONFIDENCE_FEATURES) - set(CONFIDENCE_SCORES))
    if missing:
        raise ValueError(f"confidence columns {missing} have no entry in CONFIDENCE_SCORES")


def _intervals(
    y: np.ndarray,
    score: np.ndarray,
    ref: np.ndarray | None,
    groups: np.ndarray,
    boot: Resampling,
) -> dict[str, tuple[float, float]]:
    """Every metric's interval (of the difference score - ref when ref is given), all from one
    pass over the image-clustered resamples, each replicate computed from multiplicities (no
    re-sorting)."""
    if y.size == 0:
        return dict.fromkeys(RANKING_METRICS, (float("nan"), float("nan")))
    statistics = weighted_ranking_metrics(y, *(s for s in (score, ref) if s is not None))
    reps = paired_replicates(statistics, y.size, boot, groups)
    return {
        name: percentile_interval(reps[:, i], boot.alpha) for i, name in enumerate(RANKING_METRICS)
    }


def _metrics_row(y: np.ndarray, score: np.ndarray, groups: np.ndarray, boot: Resampling) -> dict:
    row: dict[str, Any] = {"n": y.size, "n_images": pd.unique(groups).size}
    intervals = _intervals(y, score, None, groups, boot)
    for name, fn in METRICS.items():
        row[name] = fn(y, score)
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = intervals[name]
    row["aurc_fd_shifts"], row["augrc_fd_shifts"] = fd_shifts_areas(y, score)
    return row


def _oof_scores(scores: pd.DataFrame, n: int) -> dict[tuple[str, str], np.ndarray]:
    """(feature set, model) -> grouped out-of-fold score per meta row, in meta row order."""
    oof = scores[scores["split"] == "grouped_oof"]
    out = {}
    for (set_name, model), part in oof.groupby(["feature_set", "model"], sort=True):
        vec = np.full(n, np.nan)
        vec[part["row"].to_numpy()] = part["y_score"].to_numpy()
        out[(set_name, model)] = vec
    return out


def _headline_model(classifier_scores: pd.DataFrame, y: np.ndarray) -> str | None:
    """The meta-learner with the best grouped out-of-fold AUROC on XAI + confidence: the one model
    every learned row and paired difference uses, so the comparisons are like for like."""
    best, best_auc = None, -np.inf
    for (set_name, model), score in sorted(_oof_scores(classifier_scores, y.size).items()):
        ok = np.isfinite(score)
        auc = roc_auc(y[ok], score[ok]) if set_name == XAI_CONFIDENCE_SET and ok.any() else np.nan
        if np.isfinite(auc) and auc > best_auc:
            best, best_auc = model, auc
    return best


def _methods(
    meta_df: pd.DataFrame, classifier_scores: pd.DataFrame, y: np.ndarray
) -> tuple[str | None, dict[str, tuple[str, str, np.ndarray]]]:
    """(headline model, method -> (kind, model, score)): each confidence score used directly,
    and the confidence, XAI and XAI + confidence meta-learners of the one headline model."""
    _check_directions()
    require_columns(meta_df, [TARGET, GROUP, *CONFIDENCE_FEATURES], "meta dataset")
    methods: dict[str, tuple[str, str, np.ndarray]] = {}
    for f in CONFIDENCE_FEATURES:
        label, direction = CONFIDENCE_SCORES[f]
        methods[label] = ("score", "", direction * meta_df[f].to_numpy(dtype=float))
    model = _headline_model(classifier_scores, y)
    learned = _oof_scores(classifier_scores, len(meta_df))
    for set_name in (CONFIDENCE_SET, XAI_SET, XAI_CONFIDENCE_SET):
        if (set_name, model) in learned:
            methods[learned_method(set_name)] = ("learned", model, learned[(set_name, model)])
    return model, methods


def confidence_differences(
    meta_df: pd.DataFrame,
    classifier_scores: pd.DataFrame,
    boot: Resampling,
    bases: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """The paired-difference table alone: XAI + confidence and XAI alone against each of
    ``bases`` (default: the confidence meta-learner and every single score), on the same
    image-clustered resamples. Each row resamples on its own, so asking for fewer bases leaves
    the others' numbers unchanged."""
    y = meta_df[TARGET].to_numpy(dtype=bool).astype(float)
    groups = meta_df[GROUP].to_numpy()
    model, methods = _methods(meta_df, classifier_scores, y)
    if bases is None:
        bases = (
            learned_method(CONFIDENCE_SET),
            *(CONFIDENCE_SCORES[f].label for f in CONFIDENCE_FEATURES),
        )
    diffs = []
    for ext in (learned_method(XAI_CONFIDENCE_SET), learned_method(XAI_SET)):
        for base in bases:
            if ext in methods and base in methods:
                diffs.append(_difference_row(ext, base, methods, y, groups, model, boot))
    return pd.DataFrame(diffs).reindex(columns=list(DIFFERENCE_COLUMNS))


def confidence_baselines(
    meta_df: pd.DataFrame, classifier_scores: pd.DataFrame, boot: Resampling
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-method AUROC / AURC / AUGRC table, paired-difference table), image-clustered CIs.

    Methods: each confidence score used directly, and the confidence, XAI and XAI + confidence
    meta-learners (image-grouped out-of-fold scores of one model, `_headline_model`). The
    differences pair XAI + confidence and XAI alone against the confidence meta-learner and
    against each single score, on the same resamples (``boot``).
    """
    y = meta_df[TARGET].to_numpy(dtype=bool).astype(float)
    groups = meta_df[GROUP].to_numpy()
    _, methods = _methods(meta_df, classifier_scores, y)
    rows = []
    for name, (kind, used_model, score) in methods.items():
        ok = np.isfinite(score)
        row = _metrics_row(y[ok], score[ok], groups[ok], boot)
        rows.append({"method": name, "kind": kind, "model": used_model, **row})
    table = pd.DataFrame(rows).reindex(columns=list(BASELINE_COLUMNS))
    return table, confidence_differences(meta_df, classifier_scores, boot)


def _difference_row(
    ext: str,
    base: str,
    methods: Mapping[str, tuple[str, str, np.ndarray]],
    y: np.ndarray,
    groups: np.ndarray,
    model: str | None,
    boot: Resampling,
) -> dict[str, Any]:
    a, b = methods[ext][2], methods[base][2]
    ok = np.isfinite(a) & np.isfinite(b)
    row: dict[str, Any] = {"comparison": f"{ext} - {base}", "model": model or ""}
    row.update(n=int(ok.sum()), n_images=pd.unique(groups[ok]).size)
    intervals = _intervals(y[ok], a[ok], b[ok], groups[ok], boot)
    for name, fn in METRICS.items():
        row[f"{name}_diff"] = fn(y[ok], a[ok]) - fn(y[ok], b[ok])
        row[f"{name}_diff_ci_low"], row[f"{name}_diff_ci_high"] = intervals[name]
    return row
