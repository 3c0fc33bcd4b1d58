"""AURC / AUGRC on hand-computed cases, tie handling and order independence."""

from __future__ import annotations

import numpy as np
import pytest

from xai_kedro.core.meta.stats.association import roc_auc
from xai_kedro.core.meta.stats.bootstrap import (
    Resampling,
    bootstrap_ci,
    paired_replicates,
    percentile_interval,
)
from xai_kedro.core.meta.stats.risk import (
    RANKING_METRICS,
    WeightedRiskCurve,
    augrc,
    aurc,
    expected_accepted_errors,
    fd_shifts_areas,
    weighted_ranking_metrics,
)


def test_hand_computed_risk_coverage():
    # scores 0.9, 0.8, 0.7, 0.6 with correctness 1, 0, 1, 0: errors among the top k = 0, 1, 1, 2
    correct = np.array([1, 0, 1, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(expected_accepted_errors(correct, score), [0, 1, 1, 2])
    assert aurc(correct, score) == pytest.approx((0 / 1 + 1 / 2 + 1 / 3 + 2 / 4) / 4)
    assert augrc(correct, score) == pytest.approx((0 + 1 + 1 + 2) / 4 / 4)


def test_a_perfect_ranking_beats_the_reverse_one():
    correct = np.array([1, 1, 1, 0, 0])
    good, bad = np.arange(5, 0, -1.0), np.arange(1, 6.0)
    assert aurc(correct, good) < aurc(correct, bad)
    assert augrc(correct, good) < augrc(correct, bad)


def test_ties_spread_the_errors_and_do_not_depend_on_row_order():
    correct = np.array([1, 0, 1, 1, 0, 0])
    score = np.array([0.5, 0.5, 0.5, 0.2, 0.2, 0.9])
    errors = expected_accepted_errors(correct, score)
    # 0.9 is an error; then a tie of three holding one error; then a tie of two holding one
    np.testing.assert_allclose(errors, [1, 1 + 1 / 3, 1 + 2 / 3, 2, 2.5, 3])
    perm = np.random.default_rng(0).permutation(6)
    assert aurc(correct[perm], score[perm]) == pytest.approx(aurc(correct, score), abs=1e-15)
    assert augrc(correct[perm], score[perm]) == pytest.approx(augrc(correct, score), abs=1e-15)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal length"):
        aurc(np.array([1, 0]), np.array([0.1]))
    with pytest.raises(ValueError, match="finite"):
        augrc(np.array([1, 0]), np.array([0.1, np.nan]))


def test_weighted_areas_equal_the_areas_of_the_resampled_rows():
    rng = np.random.default_rng(0)
    correct = rng.random(60) < 0.7
    score = np.round(rng.random(60), 1)  # many ties
    curve = WeightedRiskCurve(correct, score)
    assert curve.areas() == pytest.approx((aurc(correct, score), augrc(correct, score)))
    for _ in range(20):
        idx = rng.integers(0, 60, 60)
        weights = np.bincount(idx, minlength=60).astype(float)
        expected = (aurc(correct[idx], score[idx]), augrc(correct[idx], score[idx]))
        assert curve.areas(weights) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_ranking_intervals_are_the_plain_bootstrap_intervals():
    """Same resamples as bootstrap_ci for the same seed and groups, paired differences too:
    one pass of `weighted_ranking_metrics` gives AUROC, AURC and AUGRC together."""
    rng = np.random.default_rng(1)
    correct = rng.random(120) < 0.6
    score, other = rng.random(120), np.round(rng.random(120), 1)
    groups = np.repeat(np.arange(40), 3)
    boot = {"n_boot": 200, "alpha": 0.1, "seed": 4, "groups": groups}
    resampling = Resampling(200, 0.1, 4)
    fast = paired_replicates(weighted_ranking_metrics(correct, score), 120, resampling, groups)
    paired = paired_replicates(
        weighted_ranking_metrics(correct, score, other), 120, resampling, groups
    )
    assert RANKING_METRICS == ("auroc", "aurc", "augrc")
    for i, fn in enumerate((roc_auc, aurc, augrc)):
        single = percentile_interval(fast[:, i], 0.1)
        assert single == pytest.approx(bootstrap_ci(fn, correct, score, **boot), rel=1e-9)

        def diff(y, a, b, fn=fn):
            return fn(y, a) - fn(y, b)

        assert percentile_interval(paired[:, i], 0.1) == pytest.approx(
            bootstrap_ci(diff, correct, score, other, **boot), rel=1e-9
        )


def _fd_shifts_reference(correct: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """fd-shifts' algorithm step by step (rc_stats_utils.selective_risk_stats /
    generalized_risk_stats, then RiskCoverageStats.evaluate_auc's `-np.trapz`): reject the
    lowest score one row at a time, a curve point whenever the score changes."""
    residuals = 1.0 - correct.astype(float)
    order = np.argsort(score, kind="stable")
    res, conf = residuals[order], score[order]
    n = len(res)
    cov, error_sum = n, res.sum()
    coverages, sel, gen = [1.0], [error_sum / n], [error_sum / n]
    for i in range(n - 1):
        cov -= 1
        error_sum -= res[i]
        if conf[i] != conf[i + 1]:
            coverages.append(cov / n)
            sel.append(error_sum / cov)
            gen.append(error_sum / n)
    c = np.array([*coverages, 0.0])
    s, g = np.array([*sel, sel[-1]]), np.array([*gen, 0.0])
    trapezoid = lambda y: float(-((y[1:] + y[:-1]) / 2 * np.diff(c)).sum())  # noqa: E731
    return trapezoid(s), trapezoid(g)


def test_fd_shifts_convention_by_hand_and_against_their_algorithm() -> None:
    correct, score = np.array([1, 0, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    # E_k = 0, 1, 1, 1, 2; r_k = 0, 1/2, 1/3, 1/4, 2/5
    aurc_fd, augrc_fd = fd_shifts_areas(correct, score)
    assert augrc_fd == pytest.approx((5 - 2 / 2) / 25)  # (sum E_k - E_n / 2) / n^2 = 0.16
    assert augrc_fd == pytest.approx(augrc(correct, score) - 0.4 / (2 * 5))  # - err / (2n)
    r = np.array([0, 1 / 2, 1 / 3, 1 / 4, 2 / 5])
    assert aurc_fd == pytest.approx((r.sum() + (r[0] - r[-1]) / 2) / 5)  # 0.2567
    assert aurc_fd == pytest.approx(aurc(correct, score) + (r[0] - r[-1]) / 10)
    rng = np.random.default_rng(0)
    for n in (1, 7, 60, 400):
        y = rng.random(n) < 0.7
        s = np.round(rng.random(n), 1)  # many ties
        assert fd_shifts_areas(y, s) == pytest.approx(_fd_shifts_reference(y, s), abs=1e-12)
    # all tied: one point at coverage 1 and the cov-0 point: the error rate / (err / 2)
    assert fd_shifts_areas([1, 0, 0, 1], [0.5] * 4) == pytest.approx((0.5, 0.25))
