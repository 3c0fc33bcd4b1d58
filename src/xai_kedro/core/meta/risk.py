"""Risk-coverage of a score that ranks predictions by how likely they are correct.

Accept predictions from the highest score down; at coverage k/n the selective risk is the error
rate among the k accepted and the generalized risk the accepted errors over all n. AURC (Geifman
et al., "Bias-Reduced Uncertainty Estimation for Deep Neural Classifiers") averages the first,
AUGRC (Traub et al., "Overcoming Common Flaws in the Evaluation of Selective Classification
Systems") the second; lower is better for both. Tied scores are accepted together: inside a tie
block the errors are spread evenly (the expectation over the block's orders), so the result does
not depend on the row order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xai_kedro.core.meta.stats import as_binary


def _blocks(correct: Any, score: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Per tie block (highest score first): its size and its number of errors; and n."""
    y = as_binary(correct, "correct")
    s = np.asarray(score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"correct and score must be 1-D of equal length: {y.shape}, {s.shape}")
    if not (np.isfinite(y).all() and np.isfinite(s).all()):
        raise ValueError("correct and score must be finite")
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
