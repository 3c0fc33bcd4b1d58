"""Which adapter and which failure predictor are deployed, and why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.deploy.choice import choose_adapter, choose_predictor, fit_predictor
from xai_kedro.core.meta.prediction.features import CONFIDENCE_FEATURES, XAI_FEATURES
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings


def _selection(gain_low: float) -> pd.DataFrame:
    rows = [
        ("doc", "all", "a2", 3.0, gain_low, 1.0),
        ("meta_regressor", "all", "a3", 1.0, gain_low, 0.5),
        ("clean_accuracy", "all", "a1", 0.0, np.nan, 4.0),
        ("doc", "blur", "a3", 9.0, 5.0, 0.0),
    ]
    columns = ["method", "shift", "picked_adapter", "gain_vs_clean_points",
               "gain_vs_clean_ci_low", "regret_points"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def test_auto_takes_the_supported_gain_else_the_clean_pick():
    supported = choose_adapter(_selection(0.5))
    assert (supported.adapter_id, supported.method) == ("a2", "doc")
    assert "gains 3.00 points" in supported.reason
    unsupported = choose_adapter(_selection(-0.5))
    assert (unsupported.adapter_id, unsupported.method) == ("a1", "clean_accuracy")
    assert "no label-free method" in unsupported.reason


def test_named_rules_and_their_errors():
    assert choose_adapter(_selection(0.5), "meta_regressor").adapter_id == "a3"
    assert choose_adapter(_selection(0.5), "doc", shift="blur").adapter_id == "a3"
    assert choose_adapter(_selection(0.5), "adapter:zz").adapter_id == "zz"
    with pytest.raises(ValueError, match="methods with a pick: doc, meta_regressor"):
        choose_adapter(_selection(0.5), "cot")
    with pytest.raises(ValueError, match="no rows for shift 'fog'"):
        choose_adapter(_selection(0.5), shift="fog")


def _comparison() -> pd.DataFrame:
    xai, conf = ",".join(XAI_FEATURES), ",".join(CONFIDENCE_FEATURES)
    rows = [
        ("RandomForest", "xai", xai, 0.70),
        ("LogisticRegression", "confidence", conf, 0.72),
        ("XGBoost", "xai+object_share (analysis)", xai + ",object_attention_share", 0.95),
        ("XGBoost", "xai+confidence", f"{xai},{conf}", np.nan),
    ]
    return pd.DataFrame(rows, columns=["model", "feature_set", "features", "grouped_oof_auc"])


def test_predictor_is_the_best_label_free_grouped_auc():
    best = choose_predictor(_comparison())
    assert (best.model, best.feature_set) == ("LogisticRegression", "confidence")
    assert best.features == CONFIDENCE_FEATURES and best.grouped_oof_auc == 0.72
    assert "grouped out-of-fold AUC" in best.reason
    assert choose_predictor(_comparison(), model="RandomForest").feature_set == "xai"
    with pytest.raises(ValueError, match="no label-free"):
        choose_predictor(_comparison(), feature_set="xai+object_share (analysis)")


def test_fit_predictor_refits_the_chosen_model_on_every_row():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame(rng.normal(size=(120, len(CONFIDENCE_FEATURES))),
                        columns=list(CONFIDENCE_FEATURES))  # fmt: skip
    meta["is_correct"] = meta[CONFIDENCE_FEATURES[0]] > 0
    choice = choose_predictor(_comparison())
    pipeline, kind = fit_predictor(meta, choice, MetaLearnerSettings(), seed=0)
    assert kind == "logistic_regression" and pipeline.named_steps["clf"].C == 0.1
    with pytest.raises(ValueError, match="all 120 are correct"):
        fit_predictor(meta.assign(is_correct=True), choice, MetaLearnerSettings(), seed=0)
