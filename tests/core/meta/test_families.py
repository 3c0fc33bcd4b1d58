"""Gold answers per shift family on constructed Silver tables with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.common.settings import SettingsError
from xai_kedro.core.meta.families import (
    ALL_CLASSES,
    EXPECTED_SIGNS,
    HEADLINE_COLUMNS,
    HOLDS,
    HYPOTHESIS_COLUMNS,
    NO_EFFECT,
    REVERSED,
    UNDEFINED,
    FamilySettings,
    families_section,
    family_headline,
    family_hypothesis,
    family_tables,
    verdict,
)
from xai_kedro.core.meta.tables import FAMILY_TABLES, GOLD_TABLES, OWN_NODE

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
                        }
                    )
    return pd.DataFrame(xai_rows), pd.DataFrame(ood_rows)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    xai, ood = _silver()
    return family_tables(xai, ood, FAST, seed=0)


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
    hyp = family_hypothesis(xai.drop(columns="object_attention_share"), ood, settings)
    assert set(hyp["class"]) == {ALL_CLASSES}
    assert set(hyp["feature"]) == {"deletion_auc", "attn_entropy"}


def test_headline_per_family(tables):
    head = tables["family_headline"]
    assert list(head.columns) == list(HEADLINE_COLUMNS)
    assert list(head["shift_family"].drop_duplicates()) == ["reference", "background", "style"]
    assert set(head["model"]) == {"LogisticRegression"}
    assert head["auroc_diff_ci_low"].le(head["auroc_diff_ci_high"]).all()
    first = head[head["comparison"] == "meta:xai+confidence - meta:confidence"]
    first = first.set_index("shift_family")
    # the object share is analysis only (never a deployable feature): no family's headline
    # can use it, so the planted answer does not leak into the headline
    assert first["n"].eq(N_IMAGES * len(ADAPTERS) * 2).all()


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
        family_headline(xai, ood, FamilySettings(model="Nope"))


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
    assert "AUROC difference" in text


def test_report_includes_the_section():
    from xai_kedro.core.meta.report.summary import summary_report

    xai, ood = _silver()
    tables = family_tables(xai, ood, FamilySettings(n_bootstrap=20, cv_folds=3))
    report = summary_report(tables)
    assert "## Per shift family" in report
    assert "**style**" in report
