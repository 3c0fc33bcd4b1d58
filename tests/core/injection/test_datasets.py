"""Targeted, control and baseline_retrained sets: equal sizes, provenance, training split only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.core.injection.test_generators import CONFIG, failures, request, synthetic_pool
from xai_kedro.core.data.augment import AugmentConfig
from xai_kedro.core.injection.datasets import (
    ControlSettings,
    check_injection_images,
    image_rows,
    select_failures,
    training_copies,
    untargeted_control,
)
from xai_kedro.core.injection.generator_api import generate

AUGMENT = {"hflip_p": 0.5, "rotation_deg": 15, "brightness": 0.2, "contrast": 0.2}


def both_arms(per_failure: int = 2, match: bool = False) -> pd.DataFrame:
    pool = synthetic_pool()
    frame = failures([("v1", 0, 1), ("v2", 3, 5), ("v3", 3, 3)])
    targeted = image_rows(
        "a1",
        "targeted",
        "synthetic_counterfactual",
        {},
        generate("synthetic_counterfactual", request(frame, pool, per_failure=per_failure)),
        CONFIG.class_names,
    )
    settings = ControlSettings(AugmentConfig.from_params(AUGMENT), match_class_counts=match)
    images, params = untargeted_control(
        len(targeted), pool, settings, 7, targeted["label"].value_counts().to_dict()
    )
    control = image_rows(
        "a1", "control", "untargeted_augmentation", params, images, CONFIG.class_names
    )
    copies, copy_params = training_copies(len(targeted), pool, 11)
    retrained = image_rows(
        "a1", "baseline_retrained", "training_copies", copy_params, copies, CONFIG.class_names
    )
    return pd.concat([targeted, control, retrained], ignore_index=True), pool


@pytest.mark.parametrize("per_failure", [1, 3])
def test_every_arm_gets_exactly_as_many_images_as_the_targeted_set(per_failure):
    frame, pool = both_arms(per_failure)
    counts = frame.groupby("arm").size()
    assert counts["targeted"] == counts["control"] == counts["baseline_retrained"]
    assert counts["targeted"] == 3 * per_failure
    check_injection_images(frame, set(pool.image_ids), {"v1", "v2", "v3"})
    with pytest.raises(ValueError, match="differ in size"):
        check_injection_images(frame.iloc[:-1], set(pool.image_ids), {"v1", "v2", "v3"})


def test_rows_carry_pixels_and_provenance_in_the_training_split():
    frame, pool = both_arms()
    assert (frame["split"] == "train").all() and frame["image_id"].str.startswith("ki-").all()
    targeted = frame[frame["arm"] == "targeted"]
    first = targeted.iloc[0]
    pixels = np.frombuffer(first["pixels"], np.uint8).reshape(first["height"], first["width"], 3)
    assert pixels.shape == (CONFIG.image_size, CONFIG.image_size, 3)
    assert set(targeted["motivated_by"]) == {"v1", "v2", "v3"}
    assert json.loads(first["details"])["texture_of_class"] == "square"
    control = frame[frame["arm"] == "control"]
    assert control["motivated_by"].isna().all()
    assert set(control["source_image_id"]) <= set(pool.image_ids)
    assert json.loads(control["generator_params"].iloc[0])["augmentation"]["rotation_deg"] == 15
    labels = dict(zip(pool.image_ids, pool.labels, strict=True))
    assert (control["label"] == control["source_image_id"].map(labels)).all()


def test_the_control_can_match_the_targeted_class_counts():
    frame, _ = both_arms(match=True)
    counts = frame.groupby(["arm", "label"]).size().unstack("arm").fillna(0)
    assert (counts["targeted"] == counts["control"]).all()
    assert ControlSettings().match_class_counts  # the default: no class re-weighting confound


def test_the_baseline_retrained_images_are_unchanged_training_images():
    """No new data: each copy is its source training image pixel for pixel."""
    frame, pool = both_arms(per_failure=3)
    copies = frame[frame["arm"] == "baseline_retrained"]
    assert (copies["generator"] == "training_copies").all() and copies["motivated_by"].isna().all()
    sources, _ = pool.fetch(list(copies["source_image_id"]))
    for row, source in zip(copies.itertuples(index=False), sources, strict=True):
        pixels = np.frombuffer(row.pixels, np.uint8).reshape(row.height, row.width, 3)
        np.testing.assert_array_equal(pixels, source)
    labels = dict(zip(pool.image_ids, pool.labels, strict=True))
    assert (copies["label"] == copies["source_image_id"].map(labels)).all()


def test_images_from_outside_the_training_split_are_refused():
    frame, pool = both_arms()
    leaked = frame.copy()
    leaked.loc[leaked["arm"] == "control", "source_image_id"] = "test_image"
    with pytest.raises(ValueError, match="outside the training split"):
        check_injection_images(leaked, set(pool.image_ids), {"v1", "v2", "v3"})
    with pytest.raises(ValueError, match="not diagnosed"):
        check_injection_images(frame, set(pool.image_ids), {"v1"})


def test_select_failures_keeps_confident_mistakes_first():
    frame = pd.DataFrame(
        {
            "adapter_id": ["a"] * 4 + ["b"],
            "image_id": ["x1", "x2", "x3", "x4", "x1"],
            "kind": [
                "low_faithfulness",
                "misclassified",
                "misclassified",
                "misclassified",
                "misclassified",
            ],
            "confidence": [0.99, 0.6, 0.9, 0.7, 0.5],
        }
    )
    kept = select_failures(frame, 2)
    assert kept[kept["adapter_id"] == "a"]["image_id"].tolist() == ["x3", "x4"]
    assert kept[kept["adapter_id"] == "b"]["image_id"].tolist() == ["x1"]
    with pytest.raises(ValueError, match="max_failures_per_adapter"):
        select_failures(frame, 0)


def test_control_settings_reject_unknown_keys():
    with pytest.raises(
        ValueError, match=r"unknown setting knowledge_injection\.control\.augmentations;"
    ):
        ControlSettings.from_params({"augmentations": {}})
