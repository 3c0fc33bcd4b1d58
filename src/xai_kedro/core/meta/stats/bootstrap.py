"""The bootstrap every Gold interval uses: resample rows or whole groups, one place.

One image appears under many adapters and corruptions, and one config family holds several
seeds: resampling rows would pretend those copies are independent and give too narrow
intervals, so every interval here can resample whole groups (cluster bootstrap). A resample is
either row indices (`bootstrap_ci`) or a multiplicity per row (`resample_weights`); both are
drawn from the same generator calls, so for one seed and one grouping they are the same
resamples, and statistics that only need weights (AUC, risk areas) skip the re-sorting.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.stats.association import as_binary


@dataclass(frozen=True)
class Resampling:
    """How an interval resamples: ``n_boot`` replicates, a (1 - ``alpha``) percentile
    interval, draws from ``default_rng(seed)``. One value handed to every interval function
    (the groups, which belong to the data, travel beside it), checked once when it is made."""

    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {self.n_boot}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def interval(
        self,
        stat_fn: Callable[..., Any],
        *arrays: Any,
        groups: Any = None,
        vectorized: bool = False,
    ) -> tuple[Any, Any]:
        """`bootstrap_ci` of ``stat_fn(*arrays)`` with these replicates, level and seed."""
        return bootstrap_ci(
            stat_fn,
            *arrays,
            n_boot=self.n_boot,
            alpha=self.alpha,
            seed=self.seed,
            groups=groups,
            vectorized=vectorized,
        )


class BootstrapOptions:
    """Mixin of the settings blocks that hold `n_bootstrap` and `ci_alpha`."""

    n_bootstrap: int
    ci_alpha: float

    def resampling(self, seed: int) -> Resampling:
        """The `Resampling` of every interval of this block, drawn from ``seed``."""
        return Resampling(int(self.n_bootstrap), float(self.ci_alpha), seed)


def interval_columns(names: Sequence[str], low: Any, high: Any) -> dict[str, Any]:
    """`{name}_ci_low` / `{name}_ci_high` of each component of a vector statistic's interval."""
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low[i], high[i]
    return out


# ------------------------------------------------------------------ row-index resamples
def _group_index(groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by group, plus each group's start offset and size (for cluster resampling)."""
    codes, _ = pd.factorize(pd.Series(np.asarray(groups)), use_na_sentinel=False)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts
    return order, starts, counts


def _index_draws(n: int, n_boot: int, seed: int, groups: Any) -> Iterator[np.ndarray]:
    """The row indices of each resample; with groups, whole groups drawn with replacement,
    the indices built without a Python loop over groups."""
    rng = np.random.default_rng(seed)
    if groups is None:
        for _ in range(n_boot):
            yield rng.integers(0, n, size=n)
        return
    order, starts, counts = _group_index(groups)
    n_groups = counts.size
    for _ in range(n_boot):
        g = rng.integers(0, n_groups, size=n_groups)
        c = counts[g]
        shift = np.repeat(starts[g] - (np.cumsum(c) - c), c)
        yield order[shift + np.arange(c.sum())]


def _replicates(
    stat_fn: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    draws: Iterator[np.ndarray],
    vectorized: bool,
) -> np.ndarray:
    """[n_boot, ...] values of the statistic, one resample at a time or stacked."""
    if not vectorized:  # one resample in memory at a time
        return np.stack([np.asarray(stat_fn(*(a[i] for a in arrays)), dtype=float) for i in draws])
    resamples = list(draws)
    if len({idx.size for idx in resamples}) == 1:
        stacked = np.stack(resamples)
        return np.stack(list(np.asarray(stat_fn(*(a[stacked] for a in arrays)), dtype=float)))
    return np.stack(
        [np.asarray(stat_fn(*(a[i][None] for a in arrays)), float)[0] for i in resamples]
    )


def _percentiles(replicates: np.ndarray, alpha: float) -> tuple[Any, Any]:
    """Per-component (alpha/2, 1 - alpha/2) percentiles ignoring NaN replicates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices -> NaN is intended
        low, high = np.nanpercentile(replicates, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


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
    bootstrap, see the module doc). ``stat_fn`` may return a scalar (floats come back) or a
    1-D vector (arrays come back). Replicates that are NaN (e.g. a resample with a single
    class) are ignored; all-NaN gives NaN.

    ``vectorized``: ``stat_fn`` takes [replicates, rows] arrays and returns one value (or
    vector) per replicate; the resamples are the same, stacked when they have equal lengths
    (always without groups, or with groups of one size), so thousands of replicates of a small
    statistic cost a few array operations instead of a Python call each.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    Resampling(n_boot, alpha, seed)  # checks the numbers
    arrs = [np.asarray(a) for a in arrays]
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"arrays differ in length: {[len(a) for a in arrs]}")
    if n == 0:
        return float("nan"), float("nan")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups has length {len(groups)}, arrays have {n}")
    draws = _index_draws(n, n_boot, seed, groups)
    return _percentiles(_replicates(stat_fn, arrs, draws, vectorized), alpha)


# ------------------------------------------------------------------ two-way resamples
@dataclass(frozen=True, eq=False)
class TwoWay:
    """A [units, images] matrix of per-image outcomes (e.g. each adapter's correctness on each
    test image, the same images for every unit) and how a two-way bootstrap resamples it.

    Both are sources of uncertainty: another test set (images) and another zoo (units). Each
    replicate draws the images with replacement (one multiplicity per column, shared by every
    unit, so the comparison stays paired) and the units with replacement (whole ``groups``,
    e.g. config families, when given). ``images=False`` / ``units=False`` give the one-way
    variants.
    """

    values: np.ndarray
    groups: Any = None
    images: bool = True
    units: bool = True

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float)
        if v.ndim != 2 or 0 in v.shape:
            raise ValueError(f"values must be a non-empty [units, images] matrix, got {v.shape}")
        if self.groups is not None and len(self.groups) != v.shape[0]:
            raise ValueError(f"groups has length {len(self.groups)}, values has {v.shape[0]} units")
        object.__setattr__(self, "values", v)

    def replicates(
        self, stat_fn: Callable[[np.ndarray, np.ndarray], Any], resampling: Resampling
    ) -> np.ndarray:
        """[n_boot, ...] replicates of ``stat_fn(unit_means, rows)``: ``unit_means`` are the
        resampled units' weighted means over the resampled images and ``rows`` their indices
        into ``values`` (to fetch other per-unit arrays, e.g. predictions)."""
        v = self.values
        n_units, n_images = v.shape
        rng = np.random.default_rng(resampling.seed)
        seed = int(rng.integers(2**32))
        out = []
        for rows in _index_draws(n_units, resampling.n_boot, seed, self.groups):
            if self.images:
                w = np.bincount(rng.integers(0, n_images, n_images), minlength=n_images)
            else:
                w = np.ones(n_images)
            if not self.units:
                rows = np.arange(n_units)
            out.append(np.asarray(stat_fn(v[rows] @ w / w.sum(), rows), dtype=float))
        return np.stack(out)

    def interval(
        self, stat_fn: Callable[[np.ndarray, np.ndarray], Any], resampling: Resampling
    ) -> tuple[Any, Any]:
        """Percentile (1 - alpha) interval of `replicates` (NaN replicates ignored)."""
        return _percentiles(self.replicates(stat_fn, resampling), resampling.alpha)


# ------------------------------------------------------------------ multiplicity resamples
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


def paired_replicates(
    statistics: Sequence[Callable[[np.ndarray], Any]],
    n: int,
    resampling: Resampling,
    groups: Any = None,
) -> np.ndarray:
    """[n_boot, ...] replicates of ``statistics[0](weights)``, or with two statistics of their
    difference on the same resample (a paired interval), for `resample_weights`' resamples."""
    reps = []
    for weights in resample_weights(n, resampling.n_boot, resampling.seed, groups):
        values = [np.asarray(stat(weights), dtype=float) for stat in statistics]
        reps.append(values[0] - values[1] if len(values) == 2 else values[0])
    return np.stack(reps)


def percentile_interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) percentiles of the finite replicates (NaN when none is)."""
    if np.isnan(replicates).all():
        return float("nan"), float("nan")
    low, high = np.nanpercentile(replicates, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


# ------------------------------------------------------------------ AUC from multiplicities
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


def _weighted_auc_of(yb: np.ndarray, score: np.ndarray) -> Callable[[np.ndarray], float]:
    """weights -> AUC of ``score``, its tie blocks sorted once."""
    blocks, n_blocks = _tie_blocks(score)
    pos, neg = blocks[yb], blocks[~yb]
    return lambda w: _weighted_auc(pos, neg, n_blocks, w[yb], w[~yb])


def weighted_aucs(y_true: Any, *scores: Any) -> list[Callable[[np.ndarray], float]]:
    """Per score, weights -> ROC-AUC of the multiset in which row i appears weights[i] times
    (a `resample_weights` resample): the scores are sorted once and each replicate costs a few
    bincounts instead of a rank sort, so the AUC CIs of 10^5-row meta datasets stay cheap."""
    y = as_binary(y_true, "y_true")
    if not np.isfinite(y).all():
        raise ValueError("y_true contains NaN")
    yb = y > 0.5
    arrays = [np.asarray(sc, dtype=float) for sc in scores]
    if any(sc.shape != yb.shape for sc in arrays):
        raise ValueError("y_true and scores must have the same length")
    return [_weighted_auc_of(yb, sc) for sc in arrays]


def bootstrap_auc_ci(
    y_true: Any,
    score: Any,
    score_ref: Any = None,
    *,
    resampling: Resampling,
    groups: Any = None,
) -> tuple[float, float]:
    """Bootstrap CI of ROC-AUC(score), or of AUC(score) - AUC(score_ref) on the same resamples.

    Same resamples as ``bootstrap_ci(roc_auc, ...)`` with the same seed and groups (a draw is a
    multiplicity per row), each replicate from `weighted_aucs`.
    """
    aucs = weighted_aucs(y_true, *(s for s in (score, score_ref) if s is not None))
    n = np.size(y_true)
    if n == 0:
        return float("nan"), float("nan")
    reps = paired_replicates(aucs, n, resampling, groups)
    return percentile_interval(reps, resampling.alpha)
