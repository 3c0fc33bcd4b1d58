"""Batch estimates: the run's estimators on one batch, the CBPE-style anchor, measured errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from xai_kedro.core.meta.adapters.estimators import (
    ESTIMATORS,
    PredictionSet,
    average_confidence,
    doc_predict,
)
from xai_kedro.core.monitor.cbpe import CBPE, IsotonicCalibration
from xai_kedro.core.monitor.estimates import (
    ESTIMATE_COLUMNS,
    FAILURE_PREDICTOR,
    batch_estimates,
    clip_estimates,
    measured_errors,
    source_sets,
)


def _rows(rng: np.random.Generator, n: int, scale: float, **extra: object) -> pd.DataFrame:
    """Predictions of a 3-class model whose logits are sharper with ``scale``."""
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + scale * np.eye(3)[labels]
    probs = softmax(logits, axis=1)
    return pd.DataFrame(
        {
            "image_id": [f"i{k:04d}" for k in range(n)],
            "label": labels,
            "pred": probs.argmax(1),
            "confidence": probs.max(1),
            "pred_entropy": -(probs * np.log(probs)).sum(1),
            "logits": list(logits),
            **extra,
        }
    )


def _silver_source(rng: np.random.Generator) -> pd.DataFrame:
    parts = [_rows(rng, 80, 3.0, corruption="clean", severity="0")]
    for k, (c, s) in enumerate([("blur", "1"), ("blur", "3"), ("noise", "1"), ("noise", "3")]):
        parts.append(_rows(rng, 80, 2.5 - 0.5 * k, corruption=c, severity=s))
    out = pd.concat(parts, ignore_index=True).assign(adapter_id="a")
    other = out.assign(adapter_id="b")  # another adapter's rows must be ignored
    return pd.concat([out, other], ignore_index=True)


def test_source_sets_take_the_adapter_clean_split_first() -> None:
    src = _silver_source(np.random.default_rng(0))
    source, calibration = source_sets(src, "a")
    assert len(source.confidence) == 80 and source.labels is not None
    assert len(calibration) == 5 and calibration[0] is source
    with pytest.raises(ValueError, match="no 'clean' rows for adapter 'z'"):
        source_sets(src, "z")


def test_batch_estimates_reuse_the_registered_estimators() -> None:
    rng = np.random.default_rng(1)
    source, calibration = source_sets(_silver_source(rng), "a")
    batch = _rows(rng, 60, 1.5).drop(columns="label")
    target = PredictionSet.from_rows(batch, labelled=False)
    summary = pd.DataFrame(
        {
            "method": ["ac", "ac", "nuclear_norm", "cbpe"],
            "shift": ["all", "blur", "all", "all"],
            "mae_points": [15.9, 99.0, 1.4, 10.6],
            "max_abs_error_points": [30.0, 99.0, 4.0, 20.0],
        }
    )
    risk = np.full(60, 0.25)
    out = batch_estimates(source, calibration, target, ESTIMATORS.names(), summary, risk)
    assert tuple(out.columns) == ESTIMATE_COLUMNS
    by = out.set_index("method")
    assert list(by.index) == [*ESTIMATORS.names(), CBPE, FAILURE_PREDICTOR]
    assert by.loc["ac", "estimated_accuracy"] == pytest.approx(
        average_confidence(target.confidence)
    )
    assert by.loc["doc", "estimated_accuracy"] == pytest.approx(
        doc_predict(source.confidence, source.correct, target.confidence)
    )
    assert by.loc["ac", "measured_mae_points"] == 15.9  # the pooled shift, not blur
    assert by.loc["nuclear_norm", "measured_max_error_points"] == 4.0
    assert np.isnan(by.loc["doc", "measured_mae_points"])
    for zoo in ("aline_s", "aline_d"):
        assert np.isnan(by.loc[zoo, "estimated_accuracy"])
        assert by.loc[zoo, "status"].startswith("skipped")
    ok = by[by["status"] == "ok"]["estimated_accuracy"]
    assert ok.notna().all() and ok.between(-0.5, 1.5).all()
    assert by.loc[FAILURE_PREDICTOR, "estimated_accuracy"] == pytest.approx(0.75)
    assert (out["n_images"] == 60).all()


def test_calibrated_estimators_are_skipped_without_shifts() -> None:
    rng = np.random.default_rng(2)
    source, _ = source_sets(_silver_source(rng), "a")
    target = source
    out = batch_estimates(source, [source], target, ["nuclear_norm", "ac"]).set_index("method")
    assert out.loc["nuclear_norm", "status"].startswith("skipped: fewer than 2")
    assert out.loc["ac", "status"] == "ok"
    assert out["measured_mae_points"].isna().all()  # no summary given


def test_cbpe_on_the_source_itself_is_its_accuracy() -> None:
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.3, 1.0, 500)
    correct = (rng.uniform(size=500) < conf).astype(float)
    iso = IsotonicCalibration(conf, correct)
    # isotonic regression preserves the mean of what it fits
    assert iso.estimate(conf) == pytest.approx(correct.mean())
    p = iso.prob_correct(np.array([-1.0, 0.5, 2.0]))
    assert np.all((p >= 0) & (p <= 1)) and p[0] <= p[1] <= p[2]
    with pytest.raises(ValueError, match="0/1"):
        IsotonicCalibration([0.1, 0.2], [0.5, 1.0])


def test_measured_errors_without_summary() -> None:
    assert measured_errors(None).empty


def test_estimates_are_clipped_to_0_1_and_the_raw_value_is_kept() -> None:
    rows = pd.DataFrame({"method": ["mano", "ac", "x"], "estimated_accuracy": [1.3, 0.7, -0.2]})
    out = clip_estimates(rows)
    assert out["estimated_accuracy"].tolist() == [1.0, 0.7, 0.0]
    assert out["raw_estimate"].tolist() == [1.3, 0.7, -0.2]
    rng = np.random.default_rng(4)
    source, calibration = source_sets(_silver_source(rng), "a")
    target = PredictionSet.from_rows(_rows(rng, 30, 1.0).drop(columns="label"), labelled=False)
    extra = {"method": "own", "label": "own", "reference": "-", "status": "ok",
             "estimated_accuracy": 1.25, "measured_mae_points": 3.0}  # fmt: skip
    summary = pd.DataFrame(
        {"method": ["own"], "shift": ["all"], "mae_points": [99.0], "max_abs_error_points": [99.0]}
    )
    out = batch_estimates(source, calibration, target, ["ac"], summary, extra=[extra])
    by = out.set_index("method")
    assert by.loc["own", "estimated_accuracy"] == 1.0 and by.loc["own", "raw_estimate"] == 1.25
    assert by.loc["own", "measured_mae_points"] == 3.0  # its own, not the summary's
    assert by.loc["own", "measured_max_error_points"] == 99.0  # filled where it has none
    assert out["estimated_accuracy"].dropna().between(0, 1).all()
    assert by.loc["ac", "raw_estimate"] == by.loc["ac", "estimated_accuracy"]
