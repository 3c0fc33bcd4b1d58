"""Association statistics between one feature and a binary outcome.

Why here: the Gold layer asks "does this clean-image XAI feature separate the samples that
survive a corruption from those that do not?". Correlations (Pearson, Spearman, point-biserial)
give direction and strength, Cohen's d and the separation ratio give the effect size; the
(cluster) bootstrap of `stats.bootstrap` gives their uncertainty.

Separation ratio: the reference experiment describes it as "mean difference / pooled std", but its own table has
cohens_d ~ 2 x separation_ratio for every feature (entropy -0.4976 vs 0.2555, sparsity 0.0923 vs
0.0461, deletion 0.3306 vs 0.1650, insertion 0.5482 vs 0.2309). With equal group spreads
d = |dm| / s while |dm| / (s_correct + s_wrong) = |dm| / (2 s), so the reference numbers fit
``separation_ratio = |mean_correct - mean_wrong| / (sd_correct + sd_wrong)`` (the Fisher-style
separation of two distributions) and not |dm| / pooled std (which would equal |d|). We use that.
Standard deviations are sample standard deviations (ddof=1), as in Cohen's d.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

logger = logging.getLogger(__name__)

STAT_KEYS = (
    "pearson_r",
    "pearson_p",
    "spearman_r",
    "spearman_p",
    "point_biserial_r",
    "point_biserial_p",
    "cohens_d",
    "separation_ratio",
    "mean_correct",
    "mean_wrong",
    "n",
    "pearson_r_images",
    "n_images",
)


def as_binary(y: Any, name: str = "y") -> np.ndarray:
    """Return a float array of 0/1 (NaN kept) from bools or 0/1 numbers; reject anything else."""
    arr = np.asarray(y)
    if arr.dtype == bool:
        return arr.astype(float)
    try:
        out = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be boolean or 0/1, got dtype {arr.dtype}") from exc
    finite = out[np.isfinite(out)]
    if not np.isin(finite, (0.0, 1.0)).all():
        bad = np.unique(finite[~np.isin(finite, (0.0, 1.0))])[:5]
        raise ValueError(f"{name} must be boolean or 0/1, found values {bad.tolist()}")
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r in plain numpy (fast inside bootstraps); NaN when either input is constant."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 2:
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    denom = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if not np.isfinite(denom) or denom <= 0:
        return float("nan")
    return float(np.clip((xc * yc).sum() / denom, -1.0, 1.0))


def roc_auc(y_true: Any, score: Any) -> float:
    """ROC-AUC via the Mann-Whitney rank formula (ties count one half); NaN with one class.

    Unlike sklearn's ``roc_auc_score`` it does not raise on a single-class resample, which a
    bootstrap produces now and then.
    """
    y = as_binary(y_true, "y_true") > 0.5
    s = np.asarray(score, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"y_true and score differ in shape: {y.shape} vs {s.shape}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = sps.rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def cohens_d(x: Any, y_bool: Any) -> float:
    """(mean_correct - mean_wrong) / pooled sample std; NaN when undefined."""
    x = np.asarray(x, dtype=float)
    y = as_binary(y_bool) > 0.5
    x1, x0 = x[y], x[~y]
    n1, n0 = x1.size, x0.size
    if n1 == 0 or n0 == 0 or n1 + n0 <= 2:
        return float("nan")
    ss = ((x1 - x1.mean()) ** 2).sum() + ((x0 - x0.mean()) ** 2).sum()
    pooled = np.sqrt(ss / (n1 + n0 - 2))
    if pooled <= 0:
        return float("nan")
    return float((x1.mean() - x0.mean()) / pooled)


def separation_ratio(x: Any, y_bool: Any) -> float:
    """|mean_correct - mean_wrong| / (sd_correct + sd_wrong), sample stds (see module doc)."""
    x = np.asarray(x, dtype=float)
    y = as_binary(y_bool) > 0.5
    x1, x0 = x[y], x[~y]
    if x1.size < 2 or x0.size < 2:
        return float("nan")
    spread = x1.std(ddof=1) + x0.std(ddof=1)
    if spread <= 0:
        return float("nan")
    return float(abs(x1.mean() - x0.mean()) / spread)


def group_means(x: Any, y: Any, groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """One point per group (image): the mean of x and the mean outcome over its rows."""
    frame = pd.DataFrame({"x": np.asarray(x, dtype=float), "y": np.asarray(y, dtype=float)})
    means = frame.groupby(np.asarray(groups), sort=True).mean()
    return means["x"].to_numpy(), means["y"].to_numpy()


def clustered_p_values(x: Any, y: Any, groups: Any) -> dict[str, float]:
    """p-values that respect the clustering: Pearson and Spearman tests on the per-group means.

    One image appears under many adapters and corruptions; its rows are not independent, so a
    test over rows overstates n (and a p of 1e-14 can be 0.35 with one point per image). The
    group means are independent when the images are; their correlation is tested on n_groups.
    """
    gx, gy = group_means(x, y, groups)
    out = {"pearson_r_images": float("nan"), "pearson_p": float("nan")}
    out.update(spearman_p=float("nan"), n_images=float(gx.size))
    if gx.size < 3 or np.ptp(gx) == 0 or np.ptp(gy) == 0:
        return out
    r, p = sps.pearsonr(gx, gy)
    out.update(pearson_r_images=float(r), pearson_p=float(p))
    out["spearman_p"] = float(sps.spearmanr(gx, gy).pvalue)
    return out


def feature_outcome_stats(
    x: Any, y_bool: Any, name: str = "feature", groups: Any = None
) -> dict[str, float]:
    """All association statistics of one feature against a binary outcome (1 = correct).

    The r, d and ratio statistics are over rows (the reference experiment's numbers). With
    ``groups`` every p-value comes from `clustered_p_values` (per-image means); without, the
    p-values assume independent rows. Rows where x or y is NaN are dropped. A constant feature
    or a single outcome class gives NaN statistics (with a logged warning) instead of an
    exception, so one degenerate feature does not stop the Gold layer.
    """
    x = np.asarray(x, dtype=float)
    y = as_binary(y_bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.all():
        logger.debug("%s: dropping %d rows with NaN", name, int((~keep).sum()))
    x, yb = x[keep], y[keep] > 0.5
    out = dict.fromkeys(STAT_KEYS, float("nan"))
    out["n"] = float(x.size)
    if yb.any():
        out["mean_correct"] = float(x[yb].mean())
    if (~yb).any():
        out["mean_wrong"] = float(x[~yb].mean())
    if yb.all() or (~yb).all():
        logger.warning("%s: outcome has a single class (n=%d); statistics are NaN", name, x.size)
        return out
    if np.ptp(x) == 0:
        logger.warning("%s: feature is constant; statistics are NaN", name)
        return out
    yf = yb.astype(float)
    out["pearson_r"], out["pearson_p"] = (float(v) for v in sps.pearsonr(x, yf))
    sp = sps.spearmanr(x, yf)
    out["spearman_r"], out["spearman_p"] = float(sp.statistic), float(sp.pvalue)
    pb = sps.pointbiserialr(yb, x)
    out["point_biserial_r"], out["point_biserial_p"] = float(pb.statistic), float(pb.pvalue)
    out["cohens_d"] = cohens_d(x, yb)
    out["separation_ratio"] = separation_ratio(x, yb)
    if groups is not None:
        clustered = clustered_p_values(x, yf, np.asarray(groups)[keep])
        out.update(clustered)
        out["point_biserial_p"] = clustered["pearson_p"]  # point-biserial r is Pearson's r
    return out
