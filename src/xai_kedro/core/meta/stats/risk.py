"""Risk-coverage of a score that ranks predictions by how likely they are correct.

Accept predictions from the highest score down; at coverage k/n the selective risk is the error
rate among the k accepted and the generalized risk the accepted errors over all n. AURC (Geifman
et al., "Bias-Reduced Uncertainty Estimation for Deep Neural Classifiers") averages the first,
AUGRC (Traub et al., "Overcoming Common Flaws in the Evaluation of Selective Classification
Systems") the second; lower is better for both. Tied scores are accepted together: inside a tie
block the errors are spread evenly (the expectation over the block's orders), so the result does
not depend on the row order. `fd_shifts_areas` gives both in fd-shifts' convention (the
trapezoid between the curve's points at distinct scores), which differs by O(1/n).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import digamma

from xai_kedro.core.meta.stats.association import as_binary
from xai_kedro.core.meta.stats.bootstrap import weighted_aucs


def _checked(correct: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    """(correct as 0/1 floats, score as floats), 1-D, equal length, finite."""
    y = as_binary(correct, "correct")
    s = np.asarray(score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"correct and score must be 1-D of equal length: {y.shape}, {s.shape}")
    if not (np.isfinite(y).all() and np.isfinite(s).all()):
        raise ValueError("correct and score must be finite")
    return y, s


def _blocks(correct: Any, score: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Per tie block (highest score first): its size and its number of errors; and n."""
    y, s = _checked(correct, score)
    order = np.argsort(-s, kind="stable")
    s_sorted, errors = s[order], 1.0 - y[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    sizes = np.diff(np.r_[starts, s.size])
    return sizes, np.add.reduceat(errors, starts) if s.size else np.zeros(0), s.size


def expected_accepted_errors(correct: Any, score: Any) -> np.ndarray:
    """E_k, the expected number of errors among the k highest-scored rows, k = 1..n."""
    sizes, block_errors, n = _blocks(correct, score)
    block = np.repeat(np.arange(sizes.size), sizes)
    position = np.arange(1, n + 1) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    before = np.cumsum(block_errors) - block_errors
    return before[block] + block_errors[block] * position / sizes[block]


def aurc(correct: Any, score: Any) -> float:
    """Area under the selective-risk / coverage curve: mean over k of E_k / k."""
    errors = expected_accepted_errors(correct, score)
    if errors.size == 0:
        return float("nan")
    return float(np.mean(errors / np.arange(1, errors.size + 1)))


def augrc(correct: Any, score: Any) -> float:
    """Area under the generalized-risk / coverage curve: mean over k of E_k / n."""
    errors = expected_accepted_errors(correct, score)
    if errors.size == 0:
        return float("nan")
    return float(np.mean(errors) / errors.size)


def fd_shifts_areas(correct: Any, score: Any) -> tuple[float, float]:
    """(AURC, AUGRC) in fd-shifts' convention (IML-DKFZ/fd-shifts, `RiskCoverageStats.aurc` /
    `.augrc` without their x1000 display scale): one risk-coverage point per distinct score
    (coverage = share with a score >= it), the trapezoid between points, and a last point at
    coverage 0 carrying the selective risk of the top block (AURC) or 0 (AUGRC). Without ties,
    AUGRC = `augrc` - err / (2 n) and AURC = `aurc` + (r_1 - r_n) / (2 n), r_k = E_k / k; the
    gap shrinks as 1/n (negligible at thousands of rows, not on tiny sets)."""
    sizes, block_errors, n = _blocks(correct, score)
    if n == 0:
        return float("nan"), float("nan")
    accepted = np.cumsum(sizes).astype(float)
    errors = np.cumsum(block_errors)
    width = sizes / n
    selective = errors / accepted
    generalized = errors / n
    previous_sel = np.r_[selective[0], selective[:-1]]  # the cov-0 point repeats the top risk
    previous_gen = np.r_[0.0, generalized[:-1]]
    aurc_fd = float((width * (selective + previous_sel) / 2).sum())
    augrc_fd = float((width * (generalized + previous_gen) / 2).sum())
    return aurc_fd, augrc_fd


def _harmonic(m: np.ndarray) -> np.ndarray:
    """H(m) = 1 + 1/2 + ... + 1/m for real m >= 0 (H(0) = 0), through the digamma function."""
    return digamma(m + 1.0) + np.euler_gamma


class WeightedRiskCurve:
    """AURC and AUGRC of one score for any multiplicity per row, from blocks sorted once.

    A bootstrap resample is a multiplicity per row, so each replicate costs two bincounts and
    a pass over the tie blocks instead of a sort. Inside block b (s rows, e errors, a rows and
    `before` errors ahead of it) E_{a+j} = before + e j / s, so its share of the AURC sum is
    before (H(a+s) - H(a)) + (e / s)(s - a (H(a+s) - H(a))) and of the AUGRC sum
    s before + e (s + 1) / 2. With every multiplicity 1 this is `aurc` and `augrc`."""

    def __init__(self, correct: Any, score: Any) -> None:
        y, s = _checked(correct, score)
        order = np.argsort(-s, kind="stable")
        s_sorted = s[order]
        ids = np.concatenate([[0], np.cumsum(s_sorted[1:] != s_sorted[:-1])]) if s.size else []
        self.block = np.empty(s.size, dtype=np.int64)
        self.block[order] = ids
        self.n_blocks = int(ids[-1]) + 1 if s.size else 0
        self.errors = 1.0 - y

    def areas(self, weights: np.ndarray | None = None) -> tuple[float, float]:
        """(AURC, AUGRC) of the multiset in which row i appears weights[i] times."""
        w = np.ones(self.block.size) if weights is None else np.asarray(weights, dtype=float)
        sizes = np.bincount(self.block, weights=w, minlength=self.n_blocks)
        errors = np.bincount(self.block, weights=w * self.errors, minlength=self.n_blocks)
        keep = sizes > 0
        sizes, errors = sizes[keep], errors[keep]
        n = sizes.sum()
        if n == 0:
            return float("nan"), float("nan")
        ahead = np.cumsum(sizes) - sizes
        before = np.cumsum(errors) - errors
        dh = _harmonic(ahead + sizes) - _harmonic(ahead)
        aurc_sum = before * dh + (errors / sizes) * (sizes - ahead * dh)
        augrc_sum = sizes * before + errors * (sizes + 1.0) / 2.0
        return float(aurc_sum.sum() / n), float(augrc_sum.sum() / n**2)


RANKING_METRICS = ("auroc", "aurc", "augrc")


def weighted_ranking_metrics(
    correct: Any, *scores: Any
) -> list[Callable[[np.ndarray], tuple[float, float, float]]]:
    """Per score, weights -> (AUROC, AURC, AUGRC) of the multiset in which row i appears
    weights[i] times: the three metrics of one `resample_weights` resample from one draw, so
    `paired_replicates` gives all their intervals (or paired differences) in one pass."""
    aucs = weighted_aucs(correct, *scores)
    curves = [WeightedRiskCurve(correct, score) for score in scores]
    return [
        lambda w, auc=auc, curve=curve: (auc(w), *curve.areas(w))
        for auc, curve in zip(aucs, curves, strict=True)
    ]
