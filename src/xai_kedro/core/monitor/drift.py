"""Embedding drift: the kernel two-sample test of Gretton et al. (2012), MMD with a permutation test.

Gretton, Borgwardt, Rasch, Schoelkopf & Smola, "A Kernel Two-Sample Test", JMLR 13 (2012):
the unbiased estimate of the squared maximum mean discrepancy (their eq. 3, MMD^2_u) with a
Gaussian kernel k(x, y) = exp(-||x - y||^2 / (2 sigma^2)), sigma the median pairwise distance of
the pooled sample (the median heuristic, their section 8), and its null distribution estimated by
permuting the pooled sample (the test alibi-detect, torchdrift and frouros run). Written here
rather than imported: alibi-detect is source-available (BSL), so it cannot be a runtime
dependency. The kernel matrix is computed once; each permutation is a column of a 0/1 indicator
matrix, so all permutations cost one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist, pdist


@dataclass(frozen=True)
class DriftResult:
    """One test: the statistic, its permutation p-value and whether it rejects at ``alpha``."""

    mmd2: float
    p_value: float
    bandwidth: float
    n_reference: int
    n_batch: int
    n_permutations: int
    alpha: float

    @property
    def drift(self) -> bool:
        return bool(self.p_value < self.alpha)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mmd2": self.mmd2,
            "p_value": self.p_value,
            "drift": self.drift,
            "alpha": self.alpha,
            "bandwidth": self.bandwidth,
            "n_reference": self.n_reference,
            "n_batch": self.n_batch,
            "n_permutations": self.n_permutations,
        }


def _matrix(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        raise ValueError(f"{name} must be a finite [n >= 2, d] array, got shape {x.shape}")
    return x


def median_bandwidth(pooled: Any) -> float:
    """The median heuristic: median Euclidean distance over distinct pairs (1.0 if all equal)."""
    d = pdist(_matrix(pooled, "pooled sample"))
    positive = d[d > 0]
    return float(np.median(positive)) if positive.size else 1.0


def gaussian_kernel(x: Any, y: Any, bandwidth: float) -> np.ndarray:
    """k(x, y) = exp(-||x - y||^2 / (2 bandwidth^2)) for every row pair."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    d2 = cdist(np.asarray(x, np.float64), np.asarray(y, np.float64), "sqeuclidean")
    return np.exp(-d2 / (2.0 * bandwidth * bandwidth))


def mmd2_unbiased(kernel: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """MMD^2_u for each column of the 0/1 matrix ``in_x`` [N, B] (1 = the row is in sample X)
    over the pooled kernel matrix [N, N]; a 1-D ``in_x`` gives a scalar array."""
    s = np.asarray(in_x, dtype=np.float64)
    single = s.ndim == 1
    s = s[:, None] if single else s
    t = 1.0 - s
    n, m = s.sum(axis=0), t.sum(axis=0)
    if (n < 2).any() or (m < 2).any():
        raise ValueError("each sample needs at least 2 rows")
    ks = kernel @ s
    diag = np.diag(kernel)
    xx = (s * ks).sum(axis=0) - diag @ s
    xy = (t * ks).sum(axis=0)
    yy = (t * (kernel @ t)).sum(axis=0) - diag @ t
    out = xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (n * m)
    return out[0] if single else out


def mmd_permutation_test(
    reference: Any,
    batch: Any,
    n_permutations: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    bandwidth: float | None = None,
    chunk: int = 100,
) -> DriftResult:
    """Is ``batch`` drawn from the distribution of ``reference``? p = (1 + #{perm >= obs}) /
    (1 + B) over B seeded permutations of the pooled rows (exact level alpha under the null)."""
    x, y = _matrix(reference, "reference"), _matrix(batch, "batch")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"reference has {x.shape[1]} dimensions, batch {y.shape[1]}")
    if n_permutations < 1 or not 0 < alpha < 1:
        raise ValueError("n_permutations must be >= 1 and alpha in (0, 1)")
    pooled = np.vstack([x, y])
    sigma = float(bandwidth) if bandwidth else median_bandwidth(pooled)
    kernel = gaussian_kernel(pooled, pooled, sigma)
    n = len(x)
    observed = float(mmd2_unbiased(kernel, np.arange(len(pooled)) < n))
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, n_permutations, chunk):
        b = min(chunk, n_permutations - start)
        perms = np.argsort(rng.random((b, len(pooled))), axis=1)
        in_x = (perms < n).T  # column j: the rows permutation j puts in X
        exceed += int((mmd2_unbiased(kernel, in_x) >= observed).sum())
    return DriftResult(
        mmd2=observed,
        p_value=(1 + exceed) / (1 + n_permutations),
        bandwidth=sigma,
        n_reference=n,
        n_batch=len(y),
        n_permutations=n_permutations,
        alpha=alpha,
    )


def subsample(rows: Any, size: int, seed: int) -> np.ndarray:
    """At most ``size`` rows, drawn without replacement by ``seed`` (all rows, in order, if fewer)."""
    x = np.asarray(rows)
    if size <= 0 or len(x) <= size:
        return x
    keep = np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))
    return x[keep]
