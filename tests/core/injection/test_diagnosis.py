"""Failure diagnosis: validation split only, failures, confusers and per-class profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.data import synthetic as S
from xai_kedro.core.injection.diagnosis import (
    DiagnosisConfig,
    check_split,
    failure_profiles,
    find_failures,
    synthetic_backgrounds,
)

NAMES = ("circle", "square", "triangle")


def xai_rows(n: int = 12, adapter: str = "a1") -> pd.DataFrame:
    """Images v00..: label i % 3; a few mistakes of class 0 predicted as 1."""
    labels = np.arange(n) % 3
    preds = labels.copy()
    preds[[0, 3]] = 1  # class 0 -> 1 twice
    return pd.DataFrame(
        {
            "image_id": [f"v{i:02d}" for i in range(n)],
            "adapter_id": adapter,
            "label": labels,
            "pred": preds,
            "confidence": np.linspace(0.5, 0.9, n),
            "is_correct": labels == preds,
            "object_attention_share": np.where(labels == preds, 0.7, 0.2),
            "deletion_auc": np.linspace(0.1, 0.6, n),
            "insertion_auc": 0.5,
            "heatmap": [np.full(4, 0.25, np.float32)] * n,
        }
    )


def images_of(rows: pd.DataFrame, split: str = "val") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": rows["image_id"],
            "label": rows["label"],
            "split": split,
            "background": ["stripes"] * len(rows),
            "background_class": [1] * len(rows),  # every image on class 1's training texture
        }
    )


def test_the_test_split_cannot_be_diagnosed():
    with pytest.raises(ValueError, match="must not be 'test'"):
        DiagnosisConfig(split="test")
    rows = xai_rows()
    images = images_of(rows).assign(split=["val"] * 11 + ["test"])
    with pytest.raises(ValueError, match=r"only the 'val' split.*\['test'\]"):
        find_failures(rows, images, NAMES, DiagnosisConfig())
    with pytest.raises(ValueError, match="only the 'val' split"):
        check_split(images, "val")


def test_xai_rows_of_images_outside_the_split_are_refused():
    rows = xai_rows()
    images = images_of(rows).iloc[:-1]  # the last XAI row's image is not a validation image
    with pytest.raises(ValueError, match="outside the 'val' split"):
        find_failures(rows, images, NAMES, DiagnosisConfig())


def test_failures_are_mistakes_and_low_faithfulness_samples_with_confusers():
    rows = xai_rows()
    config = DiagnosisConfig(low_faithfulness_quantile=0.9)
    failures = find_failures(rows, images_of(rows), NAMES, config)
    wrong = failures[failures["kind"] == "misclassified"]
    assert sorted(wrong["image_id"]) == ["v00", "v03"]
    assert (wrong["confuser"] == 1).all()  # the wrong prediction
    unfaithful = failures[failures["kind"] == "low_faithfulness"]
    threshold = np.quantile(rows["deletion_auc"], 0.9)
    assert set(unfaithful["image_id"]) == set(
        rows[(rows["deletion_auc"] >= threshold) & rows["is_correct"]]["image_id"]
    )
    # a right sample on another class's training texture is confused with that class
    for row in unfaithful.itertuples():
        expected = 1 if row.label != 1 else None
        if expected is not None:
            assert row.confuser == expected
        assert row.confuser != row.label
    only_mistakes = find_failures(
        rows, images_of(rows), NAMES, DiagnosisConfig(low_faithfulness_quantile=1.0)
    )
    assert set(only_mistakes["kind"]) == {"misclassified"}


def test_profiles_give_a_plain_language_reason_per_class():
    rows = xai_rows()
    images = images_of(rows)
    config = DiagnosisConfig(low_faithfulness_quantile=1.0, min_failures=2)
    failures = find_failures(rows, images, NAMES, config)
    profiles = failure_profiles(rows, images, failures, NAMES, config).set_index("label_name")
    circle = profiles.loc["circle"]
    assert circle["is_failing"] and circle["n_misclassified"] == 2
    assert circle["confused_with"] == "square" and circle["n_confused_with"] == 2
    assert circle["object_share_failures"] == pytest.approx(0.2)
    assert circle["on_confuser_background_share"] == 1.0
    assert "mostly as square" in circle["reason"]
    assert "on the background" in circle["reason"]
    assert "background shortcut" in circle["reason"]
    assert not profiles.loc["square"]["is_failing"]
    assert profiles.loc["square"]["reason"] == "no failures on the val split"


def test_synthetic_backgrounds_are_regenerated_from_the_image_path():
    config = S.SyntheticConfig(num_classes=3, image_size=32, images_per_class={"val": 4})
    paths = [f"images/{S.SHAPE_NAMES[i % 3]}/val_{i:05d}.png" for i in range(6)]
    paths.append("images/circle/train_00001.png")  # another split: unknown here
    table = synthetic_backgrounds(paths, config, "val")
    for i in range(6):
        texture_id = S.sample_spec(config, "val", i).texture_id
        assert table["background"][i] == S.texture_name(texture_id)
        tied = texture_id if texture_id < config.num_classes else -1
        assert table["background_class"][i] == tied
    assert table["background"][6] is None and table["background_class"][6] == -1
