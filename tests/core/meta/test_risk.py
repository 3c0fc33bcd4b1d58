"""AURC / AUGRC on hand-computed cases, tie handling and order independence."""

from __future__ import annotations

import numpy as np
import pytest

from xai_kedro.core.meta.risk import augrc, aurc, expected_accepted_errors


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
