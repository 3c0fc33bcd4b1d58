"""Association statistics between one feature and a binary outcome, and the bootstrap.

Why here: the Gold layer asks "does this clean-image XAI feature separate the samples that
survive a corruption from those that do not?". Correlations (Pearson, Spearman, point-biserial)
give direction and strength, Cohen's d and the separation ratio give the effect size, and the
(cluster) bootstrap gives uncertainty that respects the repetition of one image across many
adapters/corruptions.

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
import warnings
from collections.abc import Callable, Iterator
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


def _group_index(groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by group, plus each group's start offset and size (for cluster resampling)."""
    codes, _ = pd.factorize(pd.Series(np.asarray(groups)), use_na_sentinel=False)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts
    return order, starts, counts


def bootstrap_ci(
    stat_fn: Callable[..., Any],
    *arrays: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: Any = None,
    vectorized: bool = False,
) -> tuple[Any, Any]:
    """Percentile bootstrap (1 - alpha) interval of ``stat_fn(*arrays)``.

    With ``groups`` (e.g. image_id) whole groups are resampled with replacement (cluster
    bootstrap): one image appears under many adapters and corruptions, and resampling rows
    would pretend those copies are independent and give too narrow intervals. The row indices
    of each draw are built without a Python loop over groups. ``stat_fn`` may return a scalar
    (floats come back) or a 1-D vector (arrays come back). Replicates that are NaN (e.g. a
    resample with a single class) are ignored; all-NaN gives NaN.

    ``vectorized``: ``stat_fn`` takes [replicates, rows] arrays and returns one value (or
    vector) per replicate; the resamples are the same, stacked when they have equal lengths
    (always without groups, or with groups of one size), so thousands of replicates of a small
    statistic cost a few array operations instead of a Python call each.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    arrs = [np.asarray(a) for a in arrays]
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"arrays differ in length: {[len(a) for a in arrs]}")
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is not None:
        if len(groups) != n:
            raise ValueError(f"groups has length {len(groups)}, arrays have {n}")
        order, starts, counts = _group_index(groups)
        n_groups = counts.size

    def draws() -> Iterator[np.ndarray]:
        for _ in range(n_boot):
            if groups is None:
                yield rng.integers(0, n, size=n)
            else:
                g = rng.integers(0, n_groups, size=n_groups)
                c = counts[g]
                shift = np.repeat(starts[g] - (np.cumsum(c) - c), c)
                yield order[shift + np.arange(c.sum())]

    if not vectorized:  # one resample in memory at a time
        reps = [np.asarray(stat_fn(*(a[idx] for a in arrs)), dtype=float) for idx in draws()]
    else:
        resamples = list(draws())
        if len({idx.size for idx in resamples}) == 1:
            stacked = np.stack(resamples)
            reps = list(np.asarray(stat_fn(*(a[stacked] for a in arrs)), dtype=float))
        else:
            reps = [np.asarray(stat_fn(*(a[i][None] for a in arrs)), float)[0] for i in resamples]
    reps_arr = np.stack(reps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices -> NaN is intended
        low, high = np.nanpercentile(reps_arr, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def _tie_blocks(score: np.ndarray) -> tuple[np.ndarray, int]:
    """Block id per row (equal scores share a block, blocks in ascending score order)."""
    order = np.argsort(score, kind="stable")
    sorted_s = score[order]
    ids = np.concatenate([[0], np.cumsum(sorted_s[1:] != sorted_s[:-1])])
    blocks = np.empty(score.size, dtype=np.int64)
    blocks[order] = ids
    return blocks, int(ids[-1]) + 1 if ids.size else 0


def _weighted_auc(
    pos_blocks: np.ndarray,
    neg_blocks: np.ndarray,
    n_blocks: int,
    w_pos: np.ndarray,
    w_neg: np.ndarray,
) -> float:
    """AUC of the multiset in which each positive/negative row appears w times (ties = 1/2)."""
    pos = np.bincount(pos_blocks, weights=w_pos, minlength=n_blocks)
    neg = np.bincount(neg_blocks, weights=w_neg, minlength=n_blocks)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def bootstrap_auc_ci(
    y_true: Any,
    score: Any,
    score_ref: Any = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: Any = None,
) -> tuple[float, float]:
    """Bootstrap CI of ROC-AUC(score), or of AUC(score) - AUC(score_ref) on the same resamples.

    Same resamples as ``bootstrap_ci(roc_auc, ...)`` with the same seed and groups (a draw is a
    multiplicity per row), but the scores are sorted once and each replicate costs a few
    bincounts instead of a rank sort: the AUC CIs of 10^5-row meta datasets stay cheap.
    """
    y = as_binary(y_true, "y_true")
    if not np.isfinite(y).all():
        raise ValueError("y_true contains NaN")
    yb = y > 0.5
    scores = [np.asarray(score, dtype=float)]
    if score_ref is not None:
        scores.append(np.asarray(score_ref, dtype=float))
    if any(sc.shape != yb.shape for sc in scores):
        raise ValueError("y_true and scores must have the same length")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    if yb.size == 0:
        return float("nan"), float("nan")
    prepared = []
    for sc in scores:
        blocks, n_blocks = _tie_blocks(sc)
        prepared.append((blocks[yb], blocks[~yb], n_blocks))
    reps = np.empty(n_boot)
    for b, weights in enumerate(resample_weights(yb.size, n_boot, seed, groups)):
        w_pos, w_neg = weights[yb], weights[~yb]
        aucs = [_weighted_auc(bp, bn, nb, w_pos, w_neg) for bp, bn, nb in prepared]
        reps[b] = aucs[0] - aucs[1] if len(aucs) == 2 else aucs[0]
    return percentile_interval(reps, alpha)


def resample_weights(n: int, n_boot: int, seed: int, groups: Any = None) -> Iterator[np.ndarray]:
    """Each bootstrap resample as a multiplicity per row (float): whole groups drawn with
    replacement when ``groups`` is given. The draws are `bootstrap_ci`'s for the same seed and
    groups, so a statistic computed from multiplicities gets the same resamples."""
    if groups is not None:
        if len(groups) != n:
            raise ValueError(f"groups has length {len(groups)}, the data has {n} rows")
        codes, _ = pd.factorize(pd.Series(np.asarray(groups)), use_na_sentinel=False)
    else:
        codes = np.arange(n)
    n_units = int(codes.max()) + 1 if n else 0
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        draw = np.bincount(rng.integers(0, n_units, size=n_units), minlength=n_units)
        yield draw[codes].astype(float)


def percentile_interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) percentiles of the finite replicates (NaN when none is)."""
    if np.isnan(replicates).all():
        return float("nan"), float("nan")
    low, high = np.nanpercentile(replicates, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)
