"""Gold answers per shift family on constructed Silver tables with a known answer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests.core.meta.adapters.test_estimation import make_zoo
from xai_kedro.core.common.settings import SettingsError
from xai_kedro.core.meta import families as families_module
from xai_kedro.core.meta.adapters.estimation import accuracy_estimation
from xai_kedro.core.meta.adapters.estimation_summary import estimation_summary
from xai_kedro.core.meta.adapters.selection import RANDOM_SELECTION, adapter_selection
from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.families import (
    ALL_CLASSES,
    ESTIMATION_FAMILY_COLUMNS,
    EXPECTED_SIGNS,
    HEADLINE_COLUMNS,
    HOLDS,
    HYPOTHESIS_COLUMNS,
    NO_EFFECT,
    REVERSED,
    UNDEFINED,
    FamilyInputs,
    FamilySettings,
    families_section,
    family_estimation,
    family_headline,
    family_hypothesis,
    family_tables,
    verdict,
)
from xai_kedro.core.meta.tables import FAMILY_TABLES, GOLD_TABLES, OWN_NODE
from xai_kedro.core.robustness.columns import family_rows

N_IMAGES, ADAPTERS, CLASSES = 60, ("lora_a", "lora_b"), (0, 1)
FAST = FamilySettings(n_bootstrap=60, cv_folds=3)


def _silver() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three families with known answers for the object share (other features are noise):
    `reference`: correct exactly when the object share is high (holds); `background`: the
    opposite (reversed); `style`: correctness drawn independently of everything (no effect)."""
    rng = np.random.default_rng(0)
    xai_rows, ood_rows = [], []
    for i in range(N_IMAGES):
        label = CLASSES[i % 2]
        for adapter in ADAPTERS:
            share = float(rng.uniform(0, 1))
            conf = float(rng.uniform(0.4, 1.0))
            xai_rows.append(
                {
                    "image_id": f"img{i:03d}",
                    "adapter_id": adapter,
                    "label": label,
                    "pred": label,
                    "target_class": label,
                    "is_correct": True,
                    "confidence": conf,
                    "margin": conf / 2,
                    "pred_entropy": float(rng.uniform(0.1, 1.0)),
                    "energy": float(-rng.uniform(1.0, 3.0)),
                    "attn_entropy": float(rng.uniform(0, 1)),
                    "gini": float(rng.uniform(0, 1)),
                    "deletion_auc": float(rng.uniform(0.2, 0.6)),
                    "insertion_auc": float(rng.uniform(0.5, 0.9)),
                    "object_attention_share": share,
                }
            )
            outcomes = {
                "reference": share > 0.5,
                "background": share <= 0.5,
                "style": bool(rng.random() < 0.5),
            }
            for family, ok in outcomes.items():
                for severity in ("1", "2"):
                    ood_rows.append(
                        {
                            "image_id": f"img{i:03d}",
                            "adapter_id": adapter,
                            "shift_family": family,
                            "corruption": f"{family}_shift",
                            "severity": severity,
                            "severity_value": float(severity),
                            "label": label,
                            "pred": label if ok else 1 - label,
                            "is_correct": bool(ok) if severity == "1" else bool(rng.random() < 0.5),
                            "confidence": 0.9 if ok else 0.6,
                            "pred_entropy": 0.3 if ok else 0.9,
                        }
                    )
    return pd.DataFrame(xai_rows), pd.DataFrame(ood_rows)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    xai, ood = _silver()
    return family_tables(FamilyInputs(xai, ood, FAST, seed=0))


def _share(hyp: pd.DataFrame, family: str, scope: str = ALL_CLASSES) -> pd.Series:
    rows = hyp[
        (hyp["shift_family"] == family)
        & (hyp["class"] == scope)
        & (hyp["feature"] == "object_attention_share")
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_verdict_reads_the_interval_against_the_expected_sign():
    assert verdict(0.1, 0.3, 1) == HOLDS
    assert verdict(-0.3, -0.1, -1) == HOLDS
    assert verdict(-0.3, -0.1, 1) == REVERSED
    assert verdict(0.1, 0.3, -1) == REVERSED
    assert verdict(-0.1, 0.3, 1) == NO_EFFECT
    assert verdict(np.nan, np.nan, 1) == UNDEFINED


def test_hypothesis_per_family_has_the_known_answer(tables):
    hyp = tables["family_hypothesis"]
    assert list(hyp.columns) == list(HYPOTHESIS_COLUMNS)
    assert list(hyp["shift_family"].drop_duplicates()) == ["reference", "background", "style"]
    assert _share(hyp, "reference")["verdict"] == HOLDS
    assert _share(hyp, "reference")["pearson_ci_low"] > 0
    assert _share(hyp, "background")["verdict"] == REVERSED
    assert _share(hyp, "background")["pearson_ci_high"] < 0
    style = _share(hyp, "style")
    assert style["verdict"] == NO_EFFECT
    assert style["pearson_ci_low"] < 0 < style["pearson_ci_high"]
    assert set(hyp["feature"]) == set(EXPECTED_SIGNS)
    signs = hyp.drop_duplicates("feature").set_index("feature")["expected_sign"]
    assert signs.to_dict() == EXPECTED_SIGNS
    # n: every OOD row of the family (images x adapters x severities), clustered by image
    assert _share(hyp, "style")["n"] == N_IMAGES * len(ADAPTERS) * 2
    assert _share(hyp, "style")["n_images"] == N_IMAGES


def test_hypothesis_per_class_rows(tables):
    hyp = tables["family_hypothesis"]
    per_family = hyp[hyp["shift_family"] == "reference"]
    assert list(per_family["class"].drop_duplicates()) == [ALL_CLASSES, "0", "1"]
    for label in ("0", "1"):
        row = _share(hyp, "reference", label)
        assert row["verdict"] == HOLDS
        assert row["n"] == N_IMAGES // 2 * len(ADAPTERS) * 2
        assert _share(hyp, "background", label)["verdict"] == REVERSED


def test_hypothesis_without_per_class_and_without_object_share():
    xai, ood = _silver()
    settings = FamilySettings(n_bootstrap=20, per_class=False)
    hyp = family_hypothesis(FamilyInputs(xai.drop(columns="object_attention_share"), ood, settings))
    assert set(hyp["class"]) == {ALL_CLASSES}
    assert set(hyp["feature"]) == {"deletion_auc", "attn_entropy"}


def test_headline_per_family(tables):
    head = tables["family_headline"]
    assert list(head.columns) == list(HEADLINE_COLUMNS)
    assert list(head["shift_family"].drop_duplicates()) == ["reference", "background", "style"]
    assert set(head["model"]) == {"LogisticRegression"}
    assert head["auroc_diff_ci_low"].le(head["auroc_diff_ci_high"]).all()
    first = head[head["comparison"] == "meta:xai+confidence - meta:confidence"]
    assert list(first["class"].drop_duplicates()) == [ALL_CLASSES, "0", "1"]
    overall = first[first["class"] == ALL_CLASSES].set_index("shift_family")
    # the object share is analysis only (never a deployable feature): no family's headline
    # can use it, so the planted answer does not leak into the headline
    assert overall["n"].eq(N_IMAGES * len(ADAPTERS) * 2).all()
    per_class = first[first["class"] != ALL_CLASSES]
    assert per_class["n"].eq(N_IMAGES // 2 * len(ADAPTERS) * 2).all()
    assert per_class["n_images"].eq(N_IMAGES // 2).all()


def _class_driven_silver() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Correctness under the shift depends on the class only (class 0 always right, class 1
    right at random), and the attention entropy tells the classes apart; confidence is noise.
    Over all classes XAI then ranks failures better than confidence; within a class it cannot."""
    xai, ood = _silver()
    rng = np.random.default_rng(7)
    xai = xai.assign(attn_entropy=xai["label"] + rng.uniform(0, 0.1, len(xai)))
    ood = ood[ood["shift_family"] == "style"].copy()
    wrong = (ood["label"] == 1).to_numpy() & (rng.random(len(ood)) < 0.6)
    ood["is_correct"] = ~wrong
    return xai, ood


def test_per_class_headline_separates_within_class_from_between_class():
    xai, ood = _class_driven_silver()
    head = family_headline(FamilyInputs(xai, ood, replace(FAST, n_bootstrap=200)))
    head = head[head["comparison"] == "meta:xai+confidence - meta:confidence"]
    head = head.set_index("class")
    assert head.loc[ALL_CLASSES, "auroc_diff_ci_low"] > 0  # between classes: XAI adds
    assert "0" not in head.index  # class 0 has one outcome: nothing to rank, no row
    for column in ("auroc_diff", "aurc_diff"):  # class 1: right or wrong at random
        assert head.loc["1", f"{column}_ci_low"] < 0 < head.loc["1", f"{column}_ci_high"]
    text = " ".join(
        families_section(family_hypothesis(FamilyInputs(xai, ood, FAST)), head.reset_index())
    )
    assert "By AUROC, XAI + confidence adds to the confidence meta-learner" in text
    assert "Within each class, XAI + confidence is not separated" in text


def test_tables_are_named_and_have_their_own_node():
    assert set(FAMILY_TABLES) <= set(GOLD_TABLES)
    assert set(FAMILY_TABLES) <= set(OWN_NODE)


def test_settings_are_checked():
    with pytest.raises(SettingsError, match="meta_learning.families"):
        FamilySettings.from_params({"n_boot": 3})
    with pytest.raises(ValueError, match="expected signs"):
        FamilySettings(features={"attn_entropy": 0})
    with pytest.raises(ValueError, match="unknown model"):
        xai, ood = _silver()
        family_headline(FamilyInputs(xai, ood, FamilySettings(model="Nope")))


def test_report_section_says_what_the_numbers_say(tables):
    lines = families_section(tables["family_hypothesis"], tables["family_headline"])
    text = "\n".join(lines)
    assert lines[0] == "## Per shift family"
    paragraphs = {p.split("**")[1]: p for p in lines[2:] if p}
    assert set(paragraphs) == {"reference", "background", "style"}
    assert "object_attention_share r = +" in paragraphs["reference"]
    assert "**holds**" in paragraphs["reference"].split("object_attention_share")[1]
    assert "**reversed**" in paragraphs["background"].split("object_attention_share")[1]
    assert "**no effect**" in paragraphs["style"].split("object_attention_share")[1]
    assert "Per class: class 0 object_attention_share holds" in paragraphs["reference"]
    assert "By AUROC, XAI + confidence" in text and "by AURC (lower is better)" in text


def test_report_includes_the_section():
    from xai_kedro.core.meta.report.summary import summary_report

    xai, ood = _silver()
    tables = family_tables(FamilyInputs(xai, ood, FamilySettings(n_bootstrap=20, cv_folds=3)))
    report = summary_report(tables)
    assert "## Per shift family" in report
    assert "**style**" in report


# ------------------------------------------------------------------ adapter level per family
EST_FAST = EstimationSettings(regressor={"n_estimators": 10})
EST_FAMILY = FamilySettings(n_bootstrap=50)


def _estimation_inputs(xai: pd.DataFrame, ood: pd.DataFrame, src: pd.DataFrame) -> FamilyInputs:
    return FamilyInputs(xai, ood, EST_FAMILY, seed=0, estimation=EST_FAST, silver_source=src)


def _zoo_families() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(silver_xai, silver_ood, silver_source) of a zoo whose fragility is planted in the clean
    attention entropy (tests/core/meta/adapters), under three families: `reference` (the zoo's
    corruptions), `background` (the same rows under other shift names: the same numbers) and
    `flat` (every adapter equally correct on every image: nothing to select)."""
    xai, ood, src = make_zoo(n_families=4, seeds=2, n_images=40, seed=1)
    background = ood.assign(corruption="bg_" + ood["corruption"])
    flat = ood.assign(corruption="flat_" + ood["corruption"])
    first = flat[flat["adapter_id"] == flat["adapter_id"].iloc[0]]
    shared = first.set_index(["image_id", "corruption", "severity"])["is_correct"]
    flat["is_correct"] = shared.reindex(
        pd.MultiIndex.from_frame(flat[["image_id", "corruption", "severity"]])
    ).to_numpy()
    ood = pd.concat(
        [
            ood.assign(shift_family="reference"),
            background.assign(shift_family="background"),
            flat.assign(shift_family="flat"),
        ],
        ignore_index=True,
    )
    return xai, ood, src.assign(shift_family="reference")


@pytest.fixture(scope="module")
def zoo_families() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return _zoo_families()


@pytest.fixture(scope="module")
def per_family(zoo_families) -> pd.DataFrame:
    xai, ood, src = zoo_families
    return family_estimation(_estimation_inputs(xai, ood, src))


def _rows(table: pd.DataFrame, family: str) -> pd.DataFrame:
    return table[table["shift_family"] == family].set_index(["method", "shift"])


def test_family_estimation_is_the_adapter_tables_on_each_family(zoo_families, per_family):
    xai, ood, src = zoo_families
    assert list(per_family.columns) == list(ESTIMATION_FAMILY_COLUMNS)
    assert list(per_family["shift_family"].drop_duplicates()) == ["reference", "background", "flat"]
    settings = replace(EST_FAST, n_bootstrap=EST_FAMILY.n_bootstrap)
    rows = family_rows(ood, "background").sort_values(["image_id", "adapter_id", "corruption",
                                                         "severity"], ignore_index=True)  # fmt: skip
    estimate = accuracy_estimation(xai, rows, family_rows(src), None, settings, 0)
    summary = estimation_summary(estimate, settings, 0).set_index(["method", "shift"])
    selection = adapter_selection(estimate, settings, 0, silver_ood=rows)
    selection = selection.set_index(["method", "shift"])
    got = _rows(per_family, "background")
    assert set(got.index) == set(summary.index) | set(selection.index)
    for col in ("mae_points", "mae_ci_low", "mae_minus_meta_ci_high", "spearman_rho"):
        pd.testing.assert_series_equal(got.loc[summary.index, col], summary[col])
    for col in ("regret_points", "regret_ci_low", "regret_ci_high", "picked_adapter"):
        pd.testing.assert_series_equal(got.loc[selection.index, col], selection[col])
    # overall rows first, then each shift of the family
    assert (got["level"].iloc[: got.index.get_level_values("method").nunique()] == "overall").all()


def test_same_rows_under_other_names_give_the_same_numbers(per_family):
    ref, bg = _rows(per_family, "reference"), _rows(per_family, "background")
    bg = bg.rename(index=lambda s: s.removeprefix("bg_"), level="shift")
    numbers = [c for c in ESTIMATION_FAMILY_COLUMNS if c.endswith(("_points", "_low", "_high"))]
    pd.testing.assert_frame_equal(ref[numbers], bg.loc[ref.index, numbers])


def test_planted_signal_and_regret_against_random_by_hand(per_family):
    ref = _rows(per_family, "reference")
    # the XAI profile sees the planted fragility, the confidence-only ablation does not
    assert (
        ref.loc[("meta_regressor_xai", "all"), "mae_points"]
        < ref.loc[("meta_regressor_conf", "all"), "mae_points"]
    )
    random = ref.xs(RANDOM_SELECTION, level="method")["regret_points"]
    picks = ref[ref["regret_points"].notna()].drop(index=RANDOM_SELECTION, level="method")
    expected = picks["regret_points"] - random.reindex(picks.index.get_level_values("shift")).values
    np.testing.assert_allclose(picks["regret_minus_random_points"], expected, atol=1e-9)
    # the pick's true accuracy against the zoo's mean (the random pick's expected accuracy)
    means = ref.xs(RANDOM_SELECTION, level="method")["picked_true_accuracy"]
    by_hand = (means.reindex(picks.index.get_level_values("shift")).values
               - picks["picked_true_accuracy"].to_numpy()) * 100.0  # fmt: skip
    np.testing.assert_allclose(picks["regret_minus_random_points"], by_hand, atol=1e-9)
    assert picks["regret_minus_random_ci_low"].le(picks["regret_minus_random_ci_high"]).all()


def test_a_flat_zoo_has_no_regret_and_is_not_separated_from_random(per_family):
    flat = _rows(per_family, "flat")
    picks = flat[flat["regret_points"].notna()]
    assert len(picks) > 0
    assert picks["regret_points"].eq(0).all()
    chosen = picks.drop(index=RANDOM_SELECTION, level="method")
    assert chosen["regret_minus_random_points"].eq(0).all()
    assert chosen["regret_minus_random_ci_low"].eq(0).all()
    assert chosen["regret_minus_random_ci_high"].eq(0).all()


def test_the_reference_estimate_is_reused_not_refitted(zoo_families, per_family, monkeypatch):
    xai, ood, src = zoo_families
    settings = replace(EST_FAST, n_bootstrap=EST_FAMILY.n_bootstrap)
    rows = family_rows(ood).sort_values(["image_id", "adapter_id", "corruption", "severity"],
                                        ignore_index=True)  # fmt: skip
    estimate = accuracy_estimation(xai, rows, family_rows(src), None, settings, 0)
    calls: list[int] = []
    original = families_module.accuracy_estimation

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(families_module, "accuracy_estimation", counted)
    reused = family_estimation(_estimation_inputs(xai, ood, src), reference_estimate=estimate)
    assert len(calls) == 2  # background and flat only
    pd.testing.assert_frame_equal(reused, per_family)


def test_report_names_estimation_and_selection_per_family(zoo_families, per_family):
    xai, ood, _ = zoo_families
    hyp = pd.DataFrame(
        {
            "shift_family": ["reference", "background", "flat"],
            "class": ALL_CLASSES,
            "feature": "attn_entropy",
            "expected_sign": -1,
            "verdict": NO_EFFECT,
            "n": 10,
            "pearson_r": 0.0,
            "pearson_ci_low": -0.1,
            "pearson_ci_high": 0.1,
        }
    )
    lines = families_section(hyp, None, per_family)
    paragraphs = {p.split("**")[1]: p for p in lines[2:] if p}
    assert "Adapter level" in lines[1]
    for family, text in paragraphs.items():
        assert "Estimation MAE (points): meta-regressor " in text, family
        assert "best label-free " in text and "mean_other_families " in text
        assert "clean_line " in text and "vs a random pick's " in text
    assert "not separated from a random pick (difference +0.0 [+0.0, +0.0])" in paragraphs["flat"]
    without = families_section(hyp, None, None)
    assert "Estimation MAE" not in "\n".join(without)
