"""Gold `explainer_features`: which explainer's profile predicts OOD correctness, with intervals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.common.settings import SettingsError
from xai_kedro.core.meta.explainers.features import (
    ALL_EXPLAINERS,
    ExplainerFeatureSettings,
    explainer_feature_comparison,
    explainer_features_section,
    profiles_by_explainer,
    resolve_explainers,
)
from xai_kedro.core.meta.prediction.comparison import compare_classifiers
from xai_kedro.core.meta.prediction.features import XAI_FEATURES, build_meta_dataset

METRICS = ["attn_entropy", "gini", "deletion_auc", "insertion_auc", "object_attention_share"]
PARAMS = ExplainerFeatureSettings(model="LogisticRegression")


def _noise_profile(silver_xai: pd.DataFrame, explainer: str, seed: int) -> pd.DataFrame:
    """The same (image, adapter) pairs with metrics that carry no signal."""
    rng = np.random.default_rng(seed)
    out = silver_xai[["image_id", "adapter_id", "target_class"]].copy()
    for m in METRICS:
        out[m] = rng.uniform(0, 1, len(out))
    return out.assign(explainer=explainer)


@pytest.fixture(scope="module")
def planted(silver):
    """attention (silver_xai) carries the planted signal; rollout and rise are noise."""
    xai, ood, _ = silver
    extra = pd.concat(
        [_noise_profile(xai, "rollout", 1), _noise_profile(xai, "rise", 2)], ignore_index=True
    )
    return xai, extra, ood


def test_profiles_side_by_side_and_incomplete_profiles_fail(planted):
    xai, extra, _ = planted
    wide = profiles_by_explainer(xai, extra, "attention")
    assert len(wide) == len(xai)
    assert {"attn_entropy@attention", "attn_entropy@rollout", "gini@rise"} <= set(wide.columns)
    merged = wide.merge(xai, on=["image_id", "adapter_id"])
    np.testing.assert_allclose(merged["attn_entropy@attention"], merged["attn_entropy"])
    with pytest.raises(ValueError, match="have no 'rise' profile"):
        profiles_by_explainer(xai, extra.iloc[:-1], "attention")
    with pytest.raises(ValueError, match="repeats engine.explainer"):
        profiles_by_explainer(xai, extra.assign(explainer="attention"), "attention")


def test_resolve_explainers_defaults_and_unknown_names():
    assert resolve_explainers(None, "attention", {"rise", "rollout"}) == [
        "attention",
        "rise",
        "rollout",
    ]
    assert resolve_explainers(["rollout"], "attention", {"rollout"}) == ["rollout"]
    with pytest.raises(ValueError, match="xai_silver.profile_explainers"):
        resolve_explainers(["occlusion"], "attention", {"rollout"})


def test_the_explainer_with_the_signal_ranks_first_outside_the_intervals(planted, fast_meta):
    xai, extra, ood = planted
    table = explainer_feature_comparison(xai, extra, ood, "attention", PARAMS, fast_meta, seed=0)
    single = table[(table["kind"] == "xai") & (table["explainer"] != ALL_EXPLAINERS)]
    assert set(single["explainer"]) == {"attention", "rollout", "rise"}
    best = single.loc[single["rank_in_kind"] == 1].iloc[0]
    assert best["explainer"] == "attention"
    others = single[single["explainer"] != "attention"]
    assert (others["diff_vs_best_ci_high"] < 0).all()
    assert (others["grouped_oof_auc_ci_low"] < 0.5).all()  # noise: its interval includes chance
    assert {ALL_EXPLAINERS, "-"} <= set(table["explainer"])
    all_set = table[(table["kind"] == "xai") & (table["explainer"] == ALL_EXPLAINERS)].iloc[0]
    assert all_set["n_features"] == 3 * len(XAI_FEATURES)
    assert table["features"].str.contains("object_attention_share").sum() == 0  # label-free only
    text = "\n".join(explainer_features_section(table))
    assert "**attention** predicts best, ahead of every other explainer" in text


def test_primary_xai_set_scores_what_classifier_comparison_reports(planted, fast_meta):
    """Same rows, folds and model: the attention set here is classifier_comparison's xai set."""
    xai, extra, ood = planted
    table = explainer_feature_comparison(xai, extra, ood, "attention", PARAMS, fast_meta)
    meta = build_meta_dataset(xai, ood)
    params = replace(fast_meta, model_names=("LogisticRegression",))
    comparison = compare_classifiers(meta, {"xai": list(XAI_FEATURES)}, params, seed=0)
    ours = table.set_index("feature_set").loc["xai[attention]", "grouped_oof_auc"]
    assert ours == pytest.approx(comparison["grouped_oof_auc"].iloc[0], abs=1e-12)


def test_two_noise_explainers_are_not_separated_and_order_does_not_matter(silver, fast_meta):
    xai, ood, _ = silver
    noise = _noise_profile(xai, "attention", 3)
    xai_noise = xai.drop(columns=METRICS).merge(
        noise.drop(columns=["explainer", "target_class"]), on=["image_id", "adapter_id"]
    )
    extra = _noise_profile(xai, "rollout", 4)
    table = explainer_feature_comparison(xai_noise, extra, ood, "attention", PARAMS, fast_meta)
    text = "\n".join(explainer_features_section(table))
    assert "not separated" in text
    shuffled = explainer_feature_comparison(
        xai_noise.sample(frac=1, random_state=1),
        extra.sample(frac=1, random_state=2),
        ood.sample(frac=1, random_state=3),
        "attention",
        PARAMS,
        fast_meta,
    )
    pd.testing.assert_frame_equal(table, shuffled)


def test_bad_parameters_are_clear_errors(planted, fast_meta):
    xai, extra, ood = planted
    with pytest.raises(ValueError, match="not in"):
        explainer_feature_comparison(
            xai, extra, ood, "attention", ExplainerFeatureSettings(model="SVM")
        )
    with pytest.raises(SettingsError, match="meta_learning.explainer_features.explainer;"):
        ExplainerFeatureSettings.from_params({"explainer": ["rollout"]})
    only_primary = explainer_feature_comparison(
        xai, extra.iloc[:0], ood, "attention", PARAMS, fast_meta
    )
    assert set(only_primary["explainer"]) == {"attention", "-"}
