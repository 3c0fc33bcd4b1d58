"""The MMD permutation test against a plain reference and its calibration on seeded draws."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from xai_kedro.core.monitor.drift import (
    gaussian_kernel,
    median_bandwidth,
    mmd2_unbiased,
    mmd_permutation_test,
    subsample,
)


def _mmd2_loops(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Gretton et al. 2012, eq. 3 (MMD^2_u), written out pair by pair."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2)))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(5, 3))
    pooled = np.vstack([x, y])
    sigma = median_bandwidth(pooled)
    kernel = gaussian_kernel(pooled, pooled, sigma)
    got = mmd2_unbiased(kernel, np.arange(12) < 7)
    assert got == pytest.approx(_mmd2_loops(x, y, sigma), rel=1e-12, abs=1e-14)
    # several splits at once give each split's own statistic
    splits = np.stack([np.arange(12) < 7, np.arange(12) >= 5], axis=1)
    both = mmd2_unbiased(kernel, splits)
    assert both[0] == pytest.approx(got)
    assert both[1] == pytest.approx(_mmd2_loops(pooled[5:], pooled[:5], sigma))


def test_median_heuristic() -> None:
    pts = np.array([[0.0], [1.0], [3.0]])  # distances 1, 3, 2
    assert median_bandwidth(pts) == 2.0
    assert median_bandwidth(np.zeros((3, 2))) == 1.0


def test_same_distribution_false_alarms_near_alpha() -> None:
    rng = np.random.default_rng(1)
    p_values = np.array(
        [
            mmd_permutation_test(
                rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), 99, seed=s
            ).p_value
            for s in range(120)
        ]
    )
    rate = float((p_values < 0.05).mean())
    assert rate <= 0.11  # alpha 0.05; binomial(120, 0.05) exceeds 0.11 with prob < 1%
    assert stats.kstest(p_values, "uniform").pvalue > 0.01  # p-values uniform under the null


def test_mean_shift_is_detected() -> None:
    rng = np.random.default_rng(2)
    detected = [
        mmd_permutation_test(
            rng.normal(size=(50, 8)), rng.normal(0.6, 1.0, size=(50, 8)), 199, seed=s
        ).drift
        for s in range(10)
    ]
    assert all(detected)


def test_result_fields_and_errors() -> None:
    rng = np.random.default_rng(3)
    res = mmd_permutation_test(rng.normal(size=(10, 2)), rng.normal(size=(6, 2)), 9)
    assert (res.n_reference, res.n_batch, res.n_permutations) == (10, 6, 9)
    assert 0.1 <= res.p_value <= 1.0  # (1 + exceed) / (1 + B)
    assert set(res.as_dict()) >= {"mmd2", "p_value", "drift", "bandwidth"}
    with pytest.raises(ValueError, match="dimensions"):
        mmd_permutation_test(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        mmd_permutation_test(np.zeros((1, 2)), np.zeros((3, 2)))


def test_subsample_is_seeded_and_ordered() -> None:
    rows = np.arange(100)
    a, b = subsample(rows, 10, 0), subsample(rows, 10, 0)
    assert np.array_equal(a, b) and len(a) == 10 and np.all(np.diff(a) > 0)
    assert np.array_equal(subsample(rows[:5], 10, 0), rows[:5])
