"""Gold `knowledge_injection`: arms trained with several seeds, compared on the same test images
with a two-way (seed x image) bootstrap; cases built so the true contrast is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.injection.measure import (
    MeasureSettings,
    knowledge_injection_table,
    seed_image_replicates,
    verdict,
    with_arms,
)
from xai_kedro.core.injection.report import answer_sentence, injection_plot, injection_report
from xai_kedro.core.meta.report.formatting import detectable_effect
from xai_kedro.core.meta.stats.bootstrap import Resampling, bootstrap_ci

N_IMAGES = 60
SEEDS = (0, 1, 2)
SETTINGS = MeasureSettings(n_bootstrap=200, ci_alpha=0.05, seed=0)
CONDITIONS = [("gaussian_noise", "s1"), ("gaussian_noise", "s2"), ("contrast", "s1")]
ARMS = ("baseline", "targeted", "control", "baseline_retrained")


def _runs(arm: str, seeds=SEEDS):
    return [-1] if arm == "baseline" else list(seeds)


def arm_rows(correct_rate, ood_rate, adapters=("a",), seed_shift=None, seeds=SEEDS):
    """Per-image rows where image i of an arm (and seed) is correct iff i < rate * N: nested,
    so the paired difference of two arms is exactly the difference of their rates.
    `seed_shift[arm][k]` moves the rate of the arm's k-th seed (clean accuracy)."""
    clean, ood = [], []
    for adapter in adapters:
        for arm, rate in correct_rate.items():
            for k, seed in enumerate(_runs(arm, seeds)):
                shift = (seed_shift or {}).get(arm, [0.0] * len(seeds))[k] if seed >= 0 else 0.0
                for i in range(N_IMAGES):
                    image = {"image_id": f"img{i:03d}", "adapter_id": adapter, "arm": arm}
                    clean.append(
                        {
                            **image,
                            "seed": seed,
                            "is_correct": i < (rate + shift) * N_IMAGES,
                            "object_attention_share": 0.5 + (0.1 if arm == "targeted" else 0.0),
                            "deletion_auc": 0.3,
                            "insertion_auc": 0.6,
                        }
                    )
                    for corruption, severity in CONDITIONS:
                        ood.append(
                            {
                                **image,
                                "seed": seed,
                                "corruption": corruption,
                                "severity": severity,
                                "is_correct": i < ood_rate[arm] * N_IMAGES,
                            }
                        )
    return pd.DataFrame(clean), pd.DataFrame(ood)


def row(table, adapter, metric, comparison, corruption=None):
    part = table[
        (table["adapter_id"] == adapter)
        & (table["metric"] == metric)
        & (table["comparison"] == comparison)
    ]
    part = (
        part[part["corruption"].isna()]
        if corruption is None
        else part[part["corruption"] == corruption]
    )
    assert len(part) == 1
    return part.iloc[0]


EVEN = {arm: 0.5 for arm in ARMS}


# ------------------------------------------------------------------ the two-way bootstrap
def test_without_seed_spread_it_is_the_image_bootstrap():
    """Identical seeds: the seed draws change nothing, and the interval of a difference is
    `bootstrap_ci`'s image bootstrap of the per-image differences, resample for resample."""
    rng = np.random.default_rng(3)
    a, b = rng.random(80), rng.random(80)
    values = np.stack([np.tile(a, (3, 1)), np.tile(b, (3, 1))])
    reps = seed_image_replicates(values, Resampling(300, seed=7))
    low, high = np.percentile(reps[:, 0] - reps[:, 1], [2.5, 97.5])
    expected = bootstrap_ci(np.mean, a - b, n_boot=300, alpha=0.05, seed=7)
    assert (low, high) == pytest.approx(expected, abs=1e-12)


def test_the_interval_widens_with_the_seed_spread_and_keeps_the_mean():
    """Targeted seeds at the same rate +-d: the mean over seeds stays the true +0.2, the
    seed-to-seed SD is d, and the interval widens as d grows."""
    widths = []
    for d in (0.0, 0.05, 0.15):
        clean, ood = arm_rows(
            {**EVEN, "targeted": 0.7}, EVEN, seed_shift={"targeted": [-d, 0.0, d]}
        )
        table = knowledge_injection_table(clean, ood, SETTINGS)
        contrast = row(table, "a", "clean_accuracy", "targeted - control")
        assert contrast["value"] == pytest.approx(0.2)
        assert contrast["n_seeds"] == 3 and len(contrast["seed_values"]) == 3
        assert contrast["seed_sd"] == pytest.approx(d, abs=1e-9)
        assert contrast["ci_low"] <= 0.2 <= contrast["ci_high"]
        widths.append(contrast["ci_high"] - contrast["ci_low"])
    assert widths[0] < widths[1] < widths[2]


def _coverage(seed_sd: float, image_only: bool) -> float:
    """Share of 200 simulated experiments whose 95 % interval covers the true contrast 0.1:
    per-image outcome = image effect + arm effect + seed effect + noise."""
    rng = np.random.default_rng(5)
    covered = 0
    for repeat in range(200):
        image = rng.normal(0.0, 1.0, 100)
        values = np.stack(
            [
                image + effect + rng.normal(0.0, seed_sd, (3, 1)) + rng.normal(0.0, 0.5, (3, 100))
                for effect in (0.1, 0.0)
            ]
        )
        if image_only:  # the seeds' mean as if it were one run: seed variance ignored
            values = values.mean(axis=1, keepdims=True)
        reps = seed_image_replicates(values, Resampling(400, seed=repeat))
        low, high = np.percentile(reps[:, 0] - reps[:, 1], [2.5, 97.5])
        covered += low <= 0.1 <= high
    return covered / 200


def test_the_two_way_interval_covers_the_truth_at_about_the_nominal_rate():
    """With seed-to-seed variance of the size of the image variance, resampling images only
    covers the true contrast far too rarely; resampling seeds too restores about 95 %."""
    assert 0.91 <= _coverage(0.1, image_only=False) <= 0.99
    assert _coverage(0.1, image_only=True) < 0.75


def test_replicates_reject_missing_values_and_bad_shapes():
    with pytest.raises(ValueError, match="finite"):
        seed_image_replicates(np.full((1, 2, 3), np.nan), Resampling(10))
    with pytest.raises(ValueError, match="series, seeds, images"):
        seed_image_replicates(np.ones((2, 3)), Resampling(10))


# ------------------------------------------------------------------ the table
def test_a_clear_gain_over_the_control_is_better_and_equal_arms_are_not_separated():
    clean, ood = arm_rows({**EVEN, "targeted": 0.8}, {arm: 0.4 for arm in ARMS})
    table = knowledge_injection_table(clean, ood, SETTINGS)
    targeted = row(table, "a", "clean_accuracy", "targeted")
    assert targeted["value"] == pytest.approx(0.8) and targeted["n_seeds"] == 3
    contrast = row(table, "a", "clean_accuracy", "targeted - control")
    assert contrast["value"] == pytest.approx(0.3)
    assert contrast["ci_low"] > 0 and contrast["verdict"] == "better"
    assert contrast["detectable"] == pytest.approx(
        detectable_effect(contrast["ci_low"], contrast["ci_high"])
    )
    assert row(table, "a", "clean_accuracy", "targeted - baseline_retrained")["verdict"] == "better"
    control = row(table, "a", "clean_accuracy", "control - baseline_retrained")
    assert control["value"] == 0.0 and control["verdict"] == "not separated"
    baseline = row(table, "a", "clean_accuracy", "baseline")
    assert baseline["n_seeds"] == 1 and np.isnan(baseline["seed_sd"])
    ood_row = row(table, "a", "ood_accuracy", "targeted - control", "all")
    assert ood_row["value"] == 0.0 and ood_row["verdict"] == "not separated"
    assert row(table, "a", "ood_accuracy", "targeted", "contrast")["n_images"] == N_IMAGES
    assert row(table, "a", "object_attention_share", "targeted - control")["verdict"] == "better"
    assert "Targeted data beats the untargeted control" in answer_sentence(
        table, "a", "clean_accuracy", None
    )
    assert "Not separated" in answer_sentence(table, "a", "ood_accuracy", "all")


def test_intervals_are_clustered_by_image():
    """Repeating every OOD row of an image must not narrow the interval (rows of one image
    are one resampling unit), whereas independent rows would."""
    clean, ood = arm_rows({**EVEN, "targeted": 0.6}, {**EVEN, "targeted": 0.6})
    once = row(
        knowledge_injection_table(clean, ood, SETTINGS),
        "a",
        "ood_accuracy",
        "targeted - control",
        "all",
    )
    tripled = pd.concat(
        [ood.assign(severity=ood["severity"] + f"_{k}") for k in range(3)], ignore_index=True
    )
    again = row(
        knowledge_injection_table(clean, tripled, SETTINGS),
        "a",
        "ood_accuracy",
        "targeted - control",
        "all",
    )
    width = once["ci_high"] - once["ci_low"]
    assert again["ci_high"] - again["ci_low"] == pytest.approx(width, rel=1e-9)


def test_lower_deletion_is_better_and_pooled_rows_cover_every_adapter():
    clean, ood = arm_rows(EVEN, EVEN, adapters=("a", "b"))
    clean.loc[clean["arm"] == "targeted", "deletion_auc"] = 0.1
    table = knowledge_injection_table(clean, ood, SETTINGS)
    assert row(table, "a", "deletion_auc", "targeted - control")["verdict"] == "better"
    pooled = row(table, "all", "clean_accuracy", "targeted - control")
    assert pooled["n_images"] == N_IMAGES and pooled["verdict"] == "not separated"
    assert verdict(-0.2, -0.1, higher_is_better=False) == "better"
    assert verdict(np.nan, 0.1, higher_is_better=True) == "no data"


def test_arms_scored_on_different_images_or_seeds_are_an_error():
    clean, ood = arm_rows(EVEN, EVEN)
    short = clean[~((clean["arm"] == "control") & (clean["image_id"] == "img000"))]
    with pytest.raises(ValueError, match="not scored under every adapter, arm and seed"):
        knowledge_injection_table(short, ood, SETTINGS)
    fewer = clean[~((clean["arm"] == "control") & (clean["seed"] == 2))]
    with pytest.raises(ValueError, match="every refined arm under the same seeds"):
        knowledge_injection_table(fewer, ood, SETTINGS)


def test_with_arms_maps_refined_ids_to_their_base_adapter_arm_and_seed():
    zoo = pd.DataFrame(
        {
            "adapter_id": ["a__targeted__s0", "a__control__s1"],
            "base_adapter_id": "a",
            "arm": ["targeted", "control"],
            "seed": [0, 1],
        }
    )
    baseline = pd.DataFrame({"image_id": ["x", "x"], "adapter_id": ["a", "other"], "v": [1, 2]})
    refined = pd.DataFrame(
        {"image_id": ["x", "x"], "adapter_id": ["a__targeted__s0", "a__control__s1"], "v": [3, 4]}
    )
    frame = with_arms(baseline, refined, zoo)
    assert sorted(zip(frame["arm"], frame["seed"], frame["v"], strict=True)) == [
        ("baseline", -1, 1), ("control", 1, 4), ("targeted", 0, 3)
    ]  # fmt: skip
    assert set(frame["adapter_id"]) == {"a"}
    with pytest.raises(ValueError, match="missing from the injection zoo"):
        with_arms(baseline, refined.assign(adapter_id="b__targeted__s0"), zoo)


def test_report_and_plot_are_written_from_the_table():
    clean, ood = arm_rows(
        {**EVEN, "targeted": 0.8},
        {"baseline": 0.4, "targeted": 0.3, "control": 0.6, "baseline_retrained": 0.4},
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
    images = pd.DataFrame(
        {
            "adapter_id": ["a"] * 3 + ["b"] * 3,
            "arm": ["targeted", "control", "baseline_retrained"] * 2,
        }
    )
    text = injection_report(profiles, table, images, "synthetic_counterfactual", "val", 0.05)
    assert "**Targeted data beats the untargeted control** on clean accuracy" in text
    assert "**Targeted data is worse than the untargeted control** on OOD accuracy" in text
    assert "mostly as square" in text and "over all refined adapters" in text
    assert "3 seeds" in text and "smallest detectable effect" in text
    assert "| a | clean accuracy | targeted | 0.800 |" in text
    figure = injection_plot(table)
    assert len(figure.axes) == 3  # a, b and pooled
