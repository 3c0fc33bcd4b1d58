"""Per-adapter accuracy estimation: ATC, DoC on hand cases; leave-one-adapter-out regressor."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.meta import estimation
from xai_kedro.core.meta.estimation import (
    ESTIMATION_COLUMNS,
    accuracy_estimation,
    aggregate_adapter_features,
    atc_predict,
    atc_threshold,
    doc_predict,
    label_free_estimates,
    leave_one_adapter_out,
    ood_accuracy_by_condition,
    ood_accuracy_per_adapter,
)

SOURCE = np.array([0.9, 0.1, 0.8, 0.3, 1.0, 0.2, 0.7, 0.5, 0.6, 0.4])
CORRECT = np.array([1, 0, 1, 0, 1, 1, 1, 0, 1, 1], dtype=bool)  # 7 of 10


def test_atc_threshold_makes_fraction_above_equal_accuracy() -> None:
    t = atc_threshold(SOURCE, CORRECT)
    assert t == pytest.approx(0.3)  # sorted: 0.1 0.2 0.3 | 0.4 ... 1.0 -> 7 above 0.3
    assert np.greater(SOURCE, t).mean() == pytest.approx(CORRECT.mean())


def test_atc_prediction_on_shifted_target() -> None:
    target = np.array([0.05, 0.25, 0.35, 0.9, 0.15, 0.31, 0.29, 0.6])  # 4 of 8 above 0.3
    assert atc_predict(SOURCE, CORRECT, target) == pytest.approx(0.5)
    # every source sample correct -> threshold below everything -> predicts 100 %
    assert atc_threshold(SOURCE, np.ones(10, bool)) == -np.inf
    assert atc_predict(SOURCE, np.ones(10, bool), target) == 1.0
    # none correct -> threshold at the maximum
    assert atc_predict(SOURCE, np.zeros(10, bool), np.array([0.5, 1.5])) == 0.5


def test_doc_prediction_by_hand() -> None:
    src_conf = np.array([0.9, 0.7, 0.8, 0.8])  # mean 0.8
    src_ok = np.array([1, 1, 0, 1])  # accuracy 0.75
    tgt_conf = np.array([0.5, 0.7])  # mean 0.6 -> 0.75 - (0.8 - 0.6) = 0.55
    assert doc_predict(src_conf, src_ok, tgt_conf) == pytest.approx(0.55)


def test_estimators_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        atc_predict(SOURCE, CORRECT, np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="one value per"):
        doc_predict(SOURCE, CORRECT[:3], SOURCE)


def _hand_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    xai = pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(10)],
            "adapter_id": "a",
            "is_correct": CORRECT,
            "confidence": SOURCE,
            "pred_entropy": 1 - SOURCE,  # negative entropy orders like confidence
        }
    )
    target = np.array([0.05, 0.25, 0.35, 0.9, 0.15, 0.31, 0.29, 0.6])
    ood = pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(8)],
            "adapter_id": "a",
            "corruption": ["blur"] * 4 + ["noise"] * 4,
            "severity": "heavy",
            "is_correct": [1, 0, 1, 0, 0, 0, 0, 1],
            "confidence": target,
            "pred_entropy": 1 - target,
        }
    ).astype({"is_correct": bool})
    return xai, ood


def test_label_free_estimates_per_adapter_and_condition() -> None:
    xai, ood = _hand_tables()
    per_adapter = label_free_estimates(xai, ood).iloc[0]
    assert per_adapter["atc_pred"] == pytest.approx(0.5)
    assert per_adapter["atc_ne_pred"] == pytest.approx(0.5)
    assert per_adapter["doc_pred"] == pytest.approx(0.7 - (SOURCE.mean() - ood.confidence.mean()))
    assert per_adapter["measured_ood_accuracy"] == pytest.approx(3 / 8)
    per_cond = label_free_estimates(xai, ood, by=("adapter_id", "corruption", "severity"))
    assert list(per_cond["corruption"]) == ["blur", "noise"]
    assert list(per_cond["atc_pred"]) == pytest.approx([0.5, 0.5])  # 0.35,0.9 | 0.31,0.6
    with pytest.raises(ValueError, match="adapter_id"):
        label_free_estimates(xai, ood, by=("corruption",))


def test_ood_accuracy_tables() -> None:
    _, ood = _hand_tables()
    assert ood_accuracy_per_adapter(ood)["a"] == pytest.approx(3 / 8)
    cond = ood_accuracy_by_condition(ood)
    assert list(cond["accuracy"]) == pytest.approx([0.5, 0.25])
    assert list(cond["n"]) == [4, 4]


def test_aggregate_adapter_features(silver: tuple[pd.DataFrame, ...]) -> None:
    xai = silver[0]
    agg = aggregate_adapter_features(xai, ["attn_entropy", "gini"], (10, 50, 90))
    assert len(agg) == xai.adapter_id.nunique()
    one = xai[xai.adapter_id == "lora_r8"]
    row = agg.set_index("adapter_id").loc["lora_r8"]
    assert row["attn_entropy_mean"] == pytest.approx(one.attn_entropy.mean())
    assert row["gini_std"] == pytest.approx(one.gini.std(ddof=1))
    assert row["attn_entropy_p90"] == pytest.approx(np.quantile(one.attn_entropy, 0.9))
    assert row["clean_accuracy"] == pytest.approx(one.is_correct.mean())
    assert row["n_images"] == len(one)


def test_leave_one_out_never_trains_on_the_predicted_adapter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fits: list[np.ndarray] = []

    class Recording(estimation.RandomForestRegressor):
        def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: None = None) -> Recording:
            fits.append(np.asarray(y).copy())
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(estimation, "RandomForestRegressor", Recording)
    y = np.array([0.9, 0.8, 0.7, 0.1])
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    pred = leave_one_adapter_out(X, y, {"regressor": {"n_estimators": 10}}, seed=0)
    assert len(fits) == 4
    for i, fitted_y in enumerate(fits):
        assert sorted(fitted_y) == sorted(np.delete(y, i))  # exactly the others
    # a random forest predicts averages of its training targets: the outlier adapter (0.1) can
    # only be predicted from the others if it was really left out
    assert pred[3] >= 0.7 - 1e-12
    assert np.all(pred[:3] <= 0.9 + 1e-12)


def test_leave_one_out_needs_three_adapters(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        pred = leave_one_adapter_out(np.zeros((2, 1)), np.array([0.5, 0.6]))
    assert np.isnan(pred).all() and "min_adapters" in caplog.text


def test_accuracy_estimation_table(
    silver: tuple[pd.DataFrame, ...], fast_estimation_params: dict
) -> None:
    xai, ood, _ = silver
    out = accuracy_estimation(xai, ood, None, fast_estimation_params, seed=0)
    assert list(out.columns) == list(ESTIMATION_COLUMNS)
    assert len(out) == 4
    measured = ood.groupby("adapter_id")["is_correct"].mean()
    assert out.set_index("adapter_id")["measured_ood_accuracy"].to_dict() == pytest.approx(
        measured.to_dict()
    )
    for m in ("meta_regressor", "atc", "atc_ne", "doc"):
        assert out[f"{m}_pred"].between(0, 1.2).all(), m
        expected = (out[f"{m}_pred"] - out["measured_ood_accuracy"]).abs() * 100
        assert out[f"{m}_abs_err"].to_numpy() == pytest.approx(expected.to_numpy())
    two = accuracy_estimation(
        xai[xai.adapter_id.isin(["lora_r4", "lora_r8"])], ood, None, fast_estimation_params
    )
    assert len(two) == 2 and two["meta_regressor_pred"].isna().all()
    assert two["atc_pred"].notna().all()
