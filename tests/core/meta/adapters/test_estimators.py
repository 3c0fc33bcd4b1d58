"""Each label-free accuracy estimator on a hand-computed case with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from xai_kedro.core.common.registry import UnknownNameError
from xai_kedro.core.meta.adapters import estimators as E

SOURCE = np.array([0.9, 0.1, 0.8, 0.3, 1.0, 0.2, 0.7, 0.5, 0.6, 0.4])
CORRECT = np.array([1, 0, 1, 0, 1, 1, 1, 0, 1, 1], dtype=bool)  # 7 of 10


def _set(logits: list[list[float]], labels: list[int] | None = None) -> E.PredictionSet:
    q = np.asarray(logits, dtype=float)
    p = E.softmax(q, axis=1)
    return E.PredictionSet(
        confidence=p.max(axis=1),
        entropy=-(p * np.log(p)).sum(axis=1),
        pred=p.argmax(axis=1),
        logits=q,
        labels=None if labels is None else np.asarray(labels),
    )


def test_average_confidence_is_the_mean_max_softmax() -> None:
    assert E.average_confidence([0.5, 0.7, 0.9]) == pytest.approx(0.7)
    target = _set([[np.log(3.0), 0.0], [0.0, 0.0]])  # max softmax 0.75 and 0.5
    assert E.ESTIMATORS.get("ac").fn(target, target, []) == pytest.approx(0.625)


def test_atc_threshold_makes_fraction_above_equal_accuracy() -> None:
    t = E.atc_threshold(SOURCE, CORRECT)
    assert t == pytest.approx(0.3)  # sorted: 0.1 0.2 0.3 | 0.4 ... 1.0 -> 7 above 0.3
    target = np.array([0.05, 0.25, 0.35, 0.9, 0.15, 0.31, 0.29, 0.6])  # 4 of 8 above 0.3
    assert E.atc_predict(SOURCE, CORRECT, target) == pytest.approx(0.5)
    assert E.atc_predict(SOURCE, np.ones(10, bool), target) == 1.0  # threshold -inf
    assert E.atc_predict(SOURCE, np.zeros(10, bool), np.array([0.5, 1.5])) == 0.5


def test_atc_ne_thresholds_negative_entropy() -> None:
    # source: entropies 0.1 (correct), 0.5 (correct), 0.9 (wrong) -> accuracy 2/3, t = -0.9
    src = E.PredictionSet(
        confidence=np.ones(3),
        entropy=np.array([0.1, 0.5, 0.9]),
        pred=np.array([0, 1, 1]),
        labels=np.array([0, 1, 0]),
    )
    tgt = E.PredictionSet(
        confidence=np.ones(4), entropy=np.array([0.2, 0.95, 1.2, 0.6]), pred=np.zeros(4, int)
    )
    assert E.ESTIMATORS.get("atc_ne").fn(src, tgt, []) == pytest.approx(0.5)  # 0.2, 0.6 < 0.9


def test_doc_prediction_by_hand() -> None:
    src_conf = np.array([0.9, 0.7, 0.8, 0.8])  # mean 0.8
    src_ok = np.array([1, 1, 0, 1])  # accuracy 0.75
    tgt_conf = np.array([0.5, 0.7])  # mean 0.6 -> 0.75 - (0.8 - 0.6) = 0.55
    assert E.doc_predict(src_conf, src_ok, tgt_conf) == pytest.approx(0.55)


def test_cot_transport_respects_the_label_marginal() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2]])
    # balanced source labels force one sample onto class 1: 0.1 + 0.8 over 2 samples
    assert E.cot_error(probs, [0.5, 0.5]) == pytest.approx(0.45)
    # all source labels class 0: each sample to its argmax, the error is 1 - AC
    assert E.cot_error(probs, [1.0, 0.0]) == pytest.approx(0.15)
    # fractional plan: sample 3 to class 1, half of sample 2 (the cheapest move) too
    three = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    assert E.cot_error(three, [0.5, 0.5]) == pytest.approx(0.3)
    assert E.label_distribution([0, 1, 1, 1], 3) == pytest.approx([0.25, 0.75, 0.0])
    with pytest.raises(ValueError, match="label distribution"):
        E.cot_error(probs, [0.5, 0.25, 0.25])


def test_cot_estimator_uses_the_source_labels() -> None:
    src = _set([[0.0, 0.0], [0.0, 0.0]], labels=[0, 1])
    tgt = _set([[np.log(9.0), 0.0], [np.log(4.0), 0.0]])  # softmax 0.9/0.1 and 0.8/0.2
    assert E.ESTIMATORS.get("cot").fn(src, tgt, []) == pytest.approx(0.55)


def test_nuclear_norm_score_by_hand() -> None:
    assert E.nuclear_norm_score(np.eye(2)) == pytest.approx(1.0)  # confident and diverse
    # confident but every prediction the same class: rank 1, ||P||_* = sqrt(2) of bound 2
    assert E.nuclear_norm_score([[1.0, 0.0], [1.0, 0.0]]) == pytest.approx(np.sqrt(2) / 2)
    uniform = np.full((4, 2), 0.5)  # ||P||_* = ||P||_F = sqrt(4 * 0.5) over sqrt(4 * 2)
    assert E.nuclear_norm_score(uniform) == pytest.approx(0.5)


def test_mano_normalisation_and_score_by_hand() -> None:
    assert E.taylor_softmax([[0.0, 0.0]])[0] == pytest.approx([0.5, 0.5])
    assert E.taylor_softmax([[1.0, 0.0]])[0] == pytest.approx([2.5 / 3.5, 1 / 3.5])
    assert E.mano_criterion([[0.0, 0.0]]) == pytest.approx(np.log(2))
    expected = (((2.5 / 3.5) ** 4 + (1 / 3.5) ** 4) / 2) ** 0.25
    # criterion 0.8 < 5: Taylor; the paper's equation normalises 1 + q + q^2 / 2 as it is
    assert E.mano_score([[1.0, 0.0]], subtract_min=False) == pytest.approx(expected)
    # the authors' code subtracts each row's minimum first: [2.5, 1] -> [1.5, 0] -> [1, 0]
    assert E.taylor_softmax([[1.0, 0.0]], subtract_min=True)[0] == pytest.approx([1.0, 0.0])
    assert E.mano_score([[1.0, 0.0]]) == pytest.approx((1 / 2) ** 0.25)
    three = E.taylor_softmax([[1.0, 0.0, -1.0]], subtract_min=True)[0]  # [2.5, 1, .5] - .5
    assert three == pytest.approx([2.0 / 2.5, 0.5 / 2.5, 0.0])
    assert E.taylor_softmax([[0.3, 0.3]], subtract_min=True)[0] == pytest.approx([0.5, 0.5])
    peaked = [[20.0, 0.0]]  # criterion (20 + 2 log(1 + e^-20)) / 2 ~ 10 > 5: softmax
    assert E.mano_criterion(peaked) > E.MANO_CRITERION_THRESHOLD
    assert E.mano_score(peaked) == pytest.approx((1 / 2) ** 0.25, rel=1e-6)


def test_linear_calibration_maps_scores_to_accuracy() -> None:
    slope, intercept = E.linear_calibration([0.2, 0.6], [0.3, 0.7])
    assert (slope, intercept) == pytest.approx((1.0, 0.1))
    with pytest.raises(ValueError, match="source_shifts"):
        E.linear_calibration([0.4], [0.5])
    with pytest.raises(ValueError, match="distinct"):
        E.linear_calibration([0.4, 0.4], [0.5, 0.6])


def test_calibrated_estimators_read_the_line_fitted_on_calibration_sets() -> None:
    # calibration: identity (score 1, accuracy 1) and one-class (score 0.707, accuracy 0.5)
    identity = E.PredictionSet(
        np.ones(2),
        np.zeros(2),
        np.array([0, 1]),
        np.array([[30.0, 0.0], [0.0, 30.0]]),
        np.array([0, 1]),
    )
    collapsed = E.PredictionSet(
        np.ones(2),
        np.zeros(2),
        np.array([0, 0]),
        np.array([[30.0, 0.0], [30.0, 0.0]]),
        np.array([0, 1]),
    )
    s_hi, s_lo = E.nuclear_norm_score(identity.probs), E.nuclear_norm_score(collapsed.probs)
    target = E.PredictionSet(np.ones(2), np.zeros(2), np.array([0, 0]), np.array([[0.0, 0.0]] * 2))
    s_t = E.nuclear_norm_score(target.probs)  # 0.5
    expected = 0.5 + (s_t - s_lo) * (1.0 - 0.5) / (s_hi - s_lo)
    got = E.ESTIMATORS.get("nuclear_norm").fn(identity, target, [identity, collapsed])
    assert got == pytest.approx(expected)
    assert s_t == pytest.approx(0.5)
    # MaNo's entry-wise norm cannot tell identity from collapsed: calibrate on confidence
    soft = E.PredictionSet(
        np.ones(2), np.zeros(2), np.array([0, 0]), np.array([[1.0, 0.0]] * 2), np.array([0, 1])
    )
    assert E.mano_criterion(identity.logits) > E.MANO_CRITERION_THRESHOLD  # softmax branch
    m_hi, m_lo = E.mano_score(identity.logits, True), E.mano_score(soft.logits, True)
    m_t = E.mano_score(target.logits, True)
    expected = 0.5 + (m_t - m_lo) * 0.5 / (m_hi - m_lo)
    assert E.ESTIMATORS.get("mano").fn(identity, target, [identity, soft]) == pytest.approx(
        expected
    )
    # softmax branch: the two MaNo variants agree
    paper = E.ESTIMATORS.get("mano_paper").fn(identity, target, [identity, soft])
    assert paper == pytest.approx(expected)


def test_mano_chooses_its_branch_on_the_source_never_on_the_target() -> None:
    # the clean source is peaked (softmax branch); the target is flat (Taylor, if it decided)
    peaked = np.array([[30.0, 0.0], [0.0, 30.0]])
    src = E.PredictionSet(np.ones(2), np.zeros(2), np.array([0, 1]), peaked, np.array([0, 1]))
    shifted = E.PredictionSet(
        np.ones(2), np.zeros(2), np.array([0, 0]), np.array([[3.0, 0.0]] * 2), np.array([0, 1])
    )
    flat = E.PredictionSet(np.ones(2), np.zeros(2), np.array([0, 0]), np.zeros((2, 2)))
    assert E.mano_criterion(flat.logits) < E.MANO_CRITERION_THRESHOLD
    got = E.ESTIMATORS.get("mano").fn(src, flat, [src, shifted])
    hi, lo = E.mano_score(peaked, True), E.mano_score(shifted.logits, True)
    t = E.mano_score(flat.logits, True)
    assert got == pytest.approx(0.5 + (t - lo) * 0.5 / (hi - lo))


def test_aline_recovers_the_line_by_hand() -> None:
    # probit agreements: ID (0.5, 1.0, 1.5) for pairs (0,1), (0,2), (1,2); OOD = 2 z - 0.5
    z_id = np.array([0.5, 1.0, 1.5])
    agr_id, agr_ood = sps.norm.cdf(z_id), sps.norm.cdf(2 * z_id - 0.5)
    acc_id = sps.norm.cdf([0.2, 0.4, 0.6])
    expected = sps.norm.cdf([-0.1, 0.3, 0.7])  # 2 z_acc - 0.5
    for variant in ("s", "d"):
        got = E.aline_predict(agr_id, agr_ood, acc_id, variant=variant)
        assert got == pytest.approx(expected, abs=1e-9), variant
    with pytest.raises(ValueError, match=">= 3 models"):
        E.aline_predict([0.5], [0.5], [0.7, 0.8])


def test_aline_without_shift_returns_the_source_accuracy() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    preds = np.stack(
        [np.where(rng.random(200) < acc, labels, (labels + 1) % 3) for acc in (0.6, 0.75, 0.9, 0.8)]
    )
    acc = (preds == labels).mean(axis=1)
    agr = E.pairwise_agreement(preds)
    assert agr.shape == (6,) and agr[0] == pytest.approx((preds[0] == preds[1]).mean())
    for variant in ("s", "d"):
        assert E.aline_predict(agr, agr, acc, variant=variant) == pytest.approx(acc, abs=1e-9)


def test_prediction_set_from_rows_and_bad_input() -> None:
    rows = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "confidence": [0.9, 0.6],
            "pred_entropy": [0.2, 0.6],
            "pred": [1, 0],
            "label": [1, 1],
            "logits": [np.array([0.0, 2.0]), np.array([1.0, 0.5])],
        }
    )
    ps = E.PredictionSet.from_rows(rows)
    assert ps.accuracy == 0.5 and ps.logits.shape == (2, 2)
    assert ps.probs.sum(axis=1) == pytest.approx([1.0, 1.0])
    no_logits = E.PredictionSet.from_rows(rows.drop(columns="logits"), labelled=False)
    with pytest.raises(ValueError, match="logits"):
        _ = no_logits.probs
    with pytest.raises(ValueError, match="labelled"):
        _ = no_logits.correct
    with pytest.raises(ValueError, match="NaN"):
        E.atc_predict(SOURCE, CORRECT, np.array([0.5, np.nan]))
    with pytest.raises(UnknownNameError, match="unknown label-free estimator 'oracle'; known: ac"):
        E.ESTIMATORS.get("oracle")
    assert {"ac", "doc", "atc_mc", "atc_ne", "cot", "nuclear_norm", "mano", "aline_d"} <= set(
        E.ESTIMATORS
    )
    assert "mano_paper" in E.ESTIMATORS  # the paper's equation, beside the authors' code
