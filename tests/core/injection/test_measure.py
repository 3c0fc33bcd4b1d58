"""Gold `knowledge_injection`: paired, image-clustered differences between the arms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.injection.measure import (
    MeasureSettings,
    knowledge_injection_table,
    verdict,
    with_arms,
)
from xai_kedro.core.injection.report import answer_sentence, injection_plot, injection_report

N_IMAGES = 60
SETTINGS = MeasureSettings(n_bootstrap=200, ci_alpha=0.05, seed=0)
CONDITIONS = [("gaussian_noise", "s1"), ("gaussian_noise", "s2"), ("contrast", "s1")]


def arm_rows(correct_rate: dict[str, float], ood_rate: dict[str, float], adapters=("a",)):
    """Per-image rows where an arm's image i is correct iff i < rate * N (nested: paired)."""
    clean, ood = [], []
    for adapter in adapters:
        for arm, rate in correct_rate.items():
            for i in range(N_IMAGES):
                clean.append(
                    {
                        "image_id": f"img{i:03d}",
                        "adapter_id": adapter,
                        "arm": arm,
                        "is_correct": i < rate * N_IMAGES,
                        "object_attention_share": 0.5 + (0.1 if arm == "targeted" else 0.0),
                        "deletion_auc": 0.3,
                        "insertion_auc": 0.6,
                    }
                )
                for corruption, severity in CONDITIONS:
                    ood.append(
                        {
                            "image_id": f"img{i:03d}",
                            "adapter_id": adapter,
                            "arm": arm,
                            "corruption": corruption,
                            "severity": severity,
                            "is_correct": i < ood_rate[arm] * N_IMAGES,
                        }
                    )
    return pd.DataFrame(clean), pd.DataFrame(ood)


def row(table, adapter, metric, arm, corruption=None):
    part = table[
        (table["adapter_id"] == adapter) & (table["metric"] == metric) & (table["arm"] == arm)
    ]
    part = (
        part[part["corruption"].isna()]
        if corruption is None
        else part[part["corruption"] == corruption]
    )
    assert len(part) == 1
    return part.iloc[0]


def test_a_clear_gain_over_the_control_is_better_and_equal_arms_are_no_effect():
    clean, ood = arm_rows(
        {"baseline": 0.5, "targeted": 0.8, "control": 0.5},
        {"baseline": 0.4, "targeted": 0.4, "control": 0.4},
    )
    table = knowledge_injection_table(clean, ood, SETTINGS)
    targeted = row(table, "a", "clean_accuracy", "targeted")
    assert targeted["value"] == pytest.approx(0.8)
    assert targeted["diff_vs_control"] == pytest.approx(0.3)
    assert targeted["diff_vs_control_low"] > 0 and targeted["verdict"] == "better"
    assert row(table, "a", "clean_accuracy", "control")["diff_vs_baseline"] == pytest.approx(0.0)
    ood_row = row(table, "a", "ood_accuracy", "targeted", "all")
    assert ood_row["diff_vs_control"] == 0.0 and ood_row["verdict"] == "no effect"
    assert row(table, "a", "ood_accuracy", "targeted", "contrast")["n_images"] == N_IMAGES
    assert row(table, "a", "object_attention_share", "targeted")["verdict"] == "better"
    assert "Targeted data beats the untargeted control" in answer_sentence(
        table, "a", "clean_accuracy", None
    )
    assert "No effect" in answer_sentence(table, "a", "ood_accuracy", "all")


def test_intervals_are_clustered_by_image():
    """Repeating every OOD row of an image must not narrow the interval (rows of one image
    are one resampling unit), whereas independent rows would."""
    clean, ood = arm_rows(
        {"baseline": 0.5, "targeted": 0.6, "control": 0.5},
        {"baseline": 0.5, "targeted": 0.6, "control": 0.5},
    )
    once = row(
        knowledge_injection_table(clean, ood, SETTINGS), "a", "ood_accuracy", "targeted", "all"
    )
    tripled = pd.concat(
        [ood.assign(severity=ood["severity"] + f"_{k}") for k in range(3)], ignore_index=True
    )
    again = row(
        knowledge_injection_table(clean, tripled, SETTINGS), "a", "ood_accuracy", "targeted", "all"
    )
    width = once["diff_vs_control_high"] - once["diff_vs_control_low"]
    assert again["diff_vs_control_high"] - again["diff_vs_control_low"] == pytest.approx(
        width, rel=0.25
    )


def test_lower_deletion_is_better_and_pooled_rows_cover_every_adapter():
    clean, ood = arm_rows(
        {"baseline": 0.5, "targeted": 0.5, "control": 0.5},
        {"baseline": 0.5, "targeted": 0.5, "control": 0.5},
        adapters=("a", "b"),
    )
    clean.loc[clean["arm"] == "targeted", "deletion_auc"] = 0.1
    table = knowledge_injection_table(clean, ood, SETTINGS)
    assert row(table, "a", "deletion_auc", "targeted")["verdict"] == "better"
    pooled = row(table, "all", "clean_accuracy", "targeted")
    assert pooled["n_images"] == N_IMAGES and pooled["verdict"] == "no effect"
    assert verdict(-0.2, -0.1, higher_is_better=False) == "better"
    assert verdict(np.nan, 0.1, higher_is_better=True) == "no data"


def test_arms_scored_on_different_images_are_an_error():
    clean, ood = arm_rows(
        {"baseline": 0.5, "targeted": 0.5, "control": 0.5},
        {"baseline": 0.5, "targeted": 0.5, "control": 0.5},
    )
    short = clean[~((clean["arm"] == "control") & (clean["image_id"] == "img000"))]
    with pytest.raises(ValueError, match="not scored under every arm"):
        knowledge_injection_table(short, ood, SETTINGS)


def test_with_arms_maps_refined_ids_to_their_base_adapter():
    zoo = pd.DataFrame(
        {
            "adapter_id": ["a__targeted", "a__control"],
            "base_adapter_id": "a",
            "arm": ["targeted", "control"],
        }
    )
    baseline = pd.DataFrame({"image_id": ["x", "x"], "adapter_id": ["a", "other"], "v": [1, 2]})
    refined = pd.DataFrame(
        {"image_id": ["x", "x"], "adapter_id": ["a__targeted", "a__control"], "v": [3, 4]}
    )
    frame = with_arms(baseline, refined, zoo)
    assert sorted(zip(frame["arm"], frame["v"], strict=True)) == [
        ("baseline", 1), ("control", 4), ("targeted", 3)
    ]  # fmt: skip
    assert set(frame["adapter_id"]) == {"a"}
    with pytest.raises(ValueError, match="missing from the injection zoo"):
        with_arms(baseline, refined.assign(adapter_id="b__targeted"), zoo)


def test_report_and_plot_are_written_from_the_table():
    clean, ood = arm_rows(
        {"baseline": 0.5, "targeted": 0.8, "control": 0.5},
        {"baseline": 0.4, "targeted": 0.3, "control": 0.6},
        adapters=("a", "b"),
    )
    table = knowledge_injection_table(clean, ood, SETTINGS)
    profiles = pd.DataFrame(
        {
            "adapter_id": ["a"],
            "label_name": ["circle"],
            "accuracy": [0.5],
            "is_failing": [True],
            "reason": ["3/6 misclassified, mostly as square (3)"],
        }
    )
    images = pd.DataFrame({"adapter_id": ["a", "a", "b", "b"], "arm": ["targeted", "control"] * 2})
    text = injection_report(profiles, table, images, "synthetic_counterfactual", "val", 0.05)
    assert "**Targeted data beats the untargeted control** on clean accuracy" in text
    assert "**Targeted data is worse than the untargeted control** on OOD accuracy" in text
    assert "mostly as square" in text and "over all refined adapters" in text
    figure = injection_plot(table)
    assert len(figure.axes) == 3  # a, b and pooled
