"""Meta-learners: reference settings, meta dataset join, grouped folds, planted-signal recovery."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.common.settings import SettingsError
from xai_kedro.core.meta.prediction.comparison import (
    COMPARISON_COLUMNS,
    SEED_COLUMNS,
    compare_classifiers,
    grouped_folds,
)
from xai_kedro.core.meta.prediction.features import (
    ANALYSIS_SET,
    CONFIDENCE_FEATURES,
    XAI_FEATURES,
    build_meta_dataset,
    default_feature_sets,
)
from xai_kedro.core.meta.prediction.importance import IMPORTANCE_COLUMNS, feature_importance
from xai_kedro.core.meta.prediction.learners import make_model
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings


@pytest.fixture(scope="module")
def meta(silver: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    xai, ood, _ = silver
    df = build_meta_dataset(xai, ood)
    df["noise"] = np.random.default_rng(11).normal(size=len(df))  # row-level pure noise
    return df


def test_defaults_are_the_reference_settings() -> None:
    p = MetaLearnerSettings()
    clf = {n: make_model(n, p.models[n], seed=42).named_steps["clf"] for n in p.model_names}
    rf, xgb, tuned, lr = (
        clf[n] for n in ("RandomForest", "XGBoost", "XGBoost_Tuned", "LogisticRegression")
    )
    assert (rf.n_estimators, rf.max_depth, rf.class_weight) == (200, 12, "balanced")
    assert (xgb.n_estimators, xgb.max_depth, xgb.reg_alpha, xgb.reg_lambda) == (200, 6, 0.1, 1.0)
    assert (
        tuned.n_estimators,
        tuned.max_depth,
        tuned.reg_alpha,
        tuned.reg_lambda,
        tuned.gamma,
    ) == (300, 4, 0.5, 2.0, 0.1)
    assert (lr.C, lr.class_weight) == (0.1, "balanced")
    assert rf.random_state == 42 and xgb.random_state == 42
    assert p.test_size == 0.2 and p.cv_folds == 5
    pipe = make_model("RandomForest", p.models["RandomForest"], seed=0)
    assert pipe.steps[0][0] == "scaler"


def test_params_override_merges_and_rejects_typos() -> None:
    p = MetaLearnerSettings.from_params(
        {"models": {"RandomForest": {"n_estimators": 7}}, "n_jobs": 2}
    )
    assert p.models["RandomForest"] == {
        "estimator": "random_forest",
        "n_estimators": 7,
        "max_depth": 12,
        "class_weight": "balanced",
    }
    assert p.n_jobs == 2 and p.models["XGBoost"]["n_estimators"] == 200
    with pytest.raises(
        SettingsError, match="unknown setting meta_learning.meta_learners.n_boostrap"
    ):
        MetaLearnerSettings.from_params({"n_boostrap": 10})
    with pytest.raises(SettingsError, match="meta_learning.meta_learners: .*SVM.* no entry"):
        MetaLearnerSettings.from_params({"model_names": ["SVM"]})
    with pytest.raises(ValueError, match="models.X.estimator: unknown meta-learner 'svm'"):
        make_model("X", {"estimator": "svm"}, seed=0)


def test_build_meta_dataset_joins_clean_features(
    silver: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    xai, ood, _ = silver
    meta = build_meta_dataset(xai, ood)
    assert len(meta) == len(ood)
    for col in (
        "image_id",
        "adapter_id",
        "corruption",
        "severity",
        "is_correct",
        "clean_is_correct",
        *XAI_FEATURES,
        *CONFIDENCE_FEATURES,
    ):
        assert col in meta.columns
    row = meta.iloc[123]
    src = xai[(xai.image_id == row.image_id) & (xai.adapter_id == row.adapter_id)].iloc[0]
    o = ood[
        (ood.image_id == row.image_id)
        & (ood.adapter_id == row.adapter_id)
        & (ood.corruption == row.corruption)
        & (ood.severity == row.severity)
    ].iloc[0]
    assert row.attn_entropy == src.attn_entropy and row.confidence == src.confidence  # clean
    assert row.is_correct == o.is_correct and row.clean_is_correct == src.is_correct


def test_build_meta_dataset_rejects_bad_input(
    silver: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    xai, ood, _ = silver
    with pytest.raises(ValueError, match="duplicate"):
        build_meta_dataset(pd.concat([xai, xai.iloc[:1]]), ood)
    with pytest.raises(ValueError, match="gini"):
        build_meta_dataset(xai.drop(columns="gini"), ood)
    with caplog.at_level(logging.WARNING):
        meta = build_meta_dataset(xai[xai.adapter_id != "lora_r4"], ood)
    assert len(meta) == (ood.adapter_id != "lora_r4").sum() and "dropped" in caplog.text


def test_object_share_is_analysis_only_and_only_when_complete(meta: pd.DataFrame) -> None:
    sets = default_feature_sets(meta)
    assert all("object_attention_share" not in feats for feats in sets.values())
    analysis = default_feature_sets(meta, include_object_share=True)
    assert analysis[ANALYSIS_SET] == [*XAI_FEATURES, "object_attention_share"]
    assert analysis["xai"] == list(XAI_FEATURES)
    partial = meta.assign(object_attention_share=np.where(meta.index % 2, np.nan, 0.5))
    sets = default_feature_sets(partial, include_object_share=True)
    assert ANALYSIS_SET not in sets
    assert sets["xai+confidence"] == [*XAI_FEATURES, *CONFIDENCE_FEATURES]


def test_curve_features_leave_the_deployable_set_when_the_curves_follow_the_label(
    silver: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    xai, ood, _ = silver
    by_label = xai.assign(target_class=xai["label"])  # the curves followed the true label
    assert (by_label["target_class"] != by_label["pred"]).any()
    sets = default_feature_sets(build_meta_dataset(by_label, ood))
    assert sets["xai"] == ["attn_entropy", "gini"]
    assert default_feature_sets(build_meta_dataset(xai, ood))["xai"] == list(XAI_FEATURES)


@pytest.mark.parametrize("stratified", [True, False])
def test_grouped_folds_never_share_an_image(meta: pd.DataFrame, stratified: bool) -> None:
    groups = meta["image_id"].to_numpy()
    y = meta["is_correct"].to_numpy() if stratified else None
    folds = grouped_folds(groups, n_splits=5, y=y, seed=3)
    assert len(folds) == 5
    seen = np.zeros(len(meta), dtype=int)
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == len(meta)
        seen[te] += 1
    assert (seen == 1).all()  # every row tested exactly once
    if stratified:
        rate = meta["is_correct"].mean()
        for _, te in folds:
            assert abs(meta["is_correct"].to_numpy()[te].mean() - rate) < 0.08


def test_grouped_folds_need_enough_groups() -> None:
    with pytest.raises(ValueError, match="distinct groups"):
        grouped_folds(np.array(["a", "a", "b", "b"]), n_splits=3)


def test_compare_classifiers_recovers_planted_signal(
    meta: pd.DataFrame, fast_meta: MetaLearnerSettings
) -> None:
    sets = {"xai": list(XAI_FEATURES), "noise": ["noise"]}
    params = replace(fast_meta, baseline_feature_set="noise")
    out, scores = compare_classifiers(meta, sets, params, seed=0, return_scores=True)
    assert list(out.columns) == list(COMPARISON_COLUMNS)
    assert list(out.columns[: len(SEED_COLUMNS)]) == list(SEED_COLUMNS)
    assert len(out) == 8 and set(out["model"]) == set(params.models)
    xai = out[out.feature_set == "xai"]
    noise = out[out.feature_set == "noise"]
    assert (xai["roc_auc"] > 0.6).all() and (xai["grouped_cv_auc_mean"] > 0.6).all()
    assert (noise["grouped_oof_auc"] - 0.5).abs().max() < 0.07
    assert (noise["grouped_cv_auc_mean"] - 0.5).abs().max() < 0.08
    assert (xai["roc_auc_ci_low"] < xai["roc_auc"]).all()
    assert (xai["roc_auc"] < xai["roc_auc_ci_high"]).all()
    assert (xai["auc_gain_ci_low"] > 0).all()  # XAI clearly beats noise
    assert noise["auc_gain_vs_baseline"].isna().all()  # no gain of the baseline over itself
    # scores: test rows are the holdout, grouped OOF covers every row once
    one = scores[(scores.model == "XGBoost") & (scores.feature_set == "xai")]
    test, oof = one[one.split == "test"], one[one.split == "grouped_oof"]
    assert len(test) == xai["n_test"].iloc[0] and len(oof) == len(meta)
    assert sorted(oof["row"]) == list(range(len(meta)))


def test_compare_classifiers_degenerate_target(
    meta: pd.DataFrame, fast_meta: MetaLearnerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    all_ok = meta.assign(is_correct=True)
    with caplog.at_level(logging.WARNING):
        out = compare_classifiers(all_ok, None, fast_meta, seed=0)
    assert len(out) == 12 and out["roc_auc"].isna().all() and out["accuracy"].isna().all()
    assert "degenerate target" in caplog.text
    imp = feature_importance(all_ok, list(XAI_FEATURES), fast_meta, seed=0)
    assert list(imp["feature"]) == list(XAI_FEATURES) and imp["xgb_importance"].isna().all()


def test_compare_classifiers_rejects_nan_features(meta: pd.DataFrame) -> None:
    bad = meta.assign(gini=np.where(meta.index == 5, np.nan, meta["gini"]))
    with pytest.raises(ValueError, match="gini"):
        compare_classifiers(
            bad, {"xai": list(XAI_FEATURES)}, MetaLearnerSettings(model_names=("XGBoost",))
        )


def test_feature_importance_finds_planted_feature(
    meta: pd.DataFrame, fast_meta: MetaLearnerSettings
) -> None:
    params = replace(fast_meta, permutation_scoring="roc_auc")
    imp = feature_importance(meta, [*XAI_FEATURES, "noise"], params, seed=0)
    assert list(imp.columns) == list(IMPORTANCE_COLUMNS)
    assert imp["xgb_importance"].sum() == pytest.approx(1.0)
    assert imp["rf_importance"].sum() == pytest.approx(1.0)
    assert imp["lr_odds_ratio"].to_numpy() == pytest.approx(np.exp(imp["lr_coef"].to_numpy()))
    assert imp["feature"].iloc[0] == "attn_entropy"  # sorted by permutation importance
    top = imp.set_index("feature")
    assert top.loc["attn_entropy", "xgb_importance"] == top["xgb_importance"].max()
    assert top.loc["attn_entropy", "lr_coef"] < 0  # low entropy -> robust
    assert top.loc["attn_entropy", "perm_importance"] > 5 * abs(top.loc["noise", "perm_importance"])
