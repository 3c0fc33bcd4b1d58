"""The evaluation's conditions and inputs (core/monitor/conditions.py) on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xai_kedro.core.monitor.conditions import (
    SOURCE,
    evaluation_conditions,
    reference_sample,
    shifted_pixels,
    source_conditions,
    split_rows,
)
from xai_kedro.core.monitor.evaluation import CLEAN_CONDITION

OOD = {
    "preset": "reference",
    "shifts": [{"shift": "jpeg_compression", "severities": [2]}],
    "source_shifts": [
        {"corruption": "contrast", "severity": "s1", "fn": "imagenet_c_contrast",
         "param": "c", "value": 0.3},
    ],
}  # fmt: skip


def test_conditions_of_the_test_images_and_of_the_source():
    every = evaluation_conditions(OOD)
    assert every[0] == (CLEAN_CONDITION, None)
    assert len(every) == 1 + 9 + 1  # clean, the reference grid, one ImageNet-C cell
    only = evaluation_conditions(OOD, ["imagenet_c"])
    assert [c.key for c, _ in only] == ["clean", "imagenet_c/jpeg_compression/2"]
    source = source_conditions(OOD)
    assert [c.key for c, _ in source] == ["clean", f"{SOURCE}/contrast/s1"]


def _bronze(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"image_id": [f"i{k}" for k in range(n)][::-1], "split": ["test", "val", "train"] * 2,
         "label": np.arange(n) % 2, "height": 4, "width": 4, "mask": None,
         "pixels": [rng.integers(0, 256, (4, 4, 3), dtype=np.uint8).tobytes() for _ in range(n)]}
    )  # fmt: skip


def test_split_rows_sorted_and_capped_and_reference_never_test():
    bronze = _bronze()
    test = split_rows(bronze, "test")
    assert test["image_id"].tolist() == ["i2", "i5"] and len(split_rows(bronze, "test", 1)) == 1
    emb = pd.DataFrame({"image_id": bronze["image_id"], "embedding": list(np.eye(6))})
    ref = reference_sample(emb, bronze, size=10, seed=0)
    assert ref.shape == (4, 6)  # every non-test image, none of the test ones
    test_vectors = np.eye(6)[bronze.index[bronze["split"] == "test"]]
    assert not any((ref == v).all(axis=1).any() for v in test_vectors)


def test_shifted_pixels_clean_is_stored_and_a_corruption_changes_them():
    rows = split_rows(_bronze(), "val")
    clean = shifted_pixels(None, rows, 0, None)
    assert clean.shape == (2, 4, 4, 3) and clean.dtype == np.uint8
    ((_, spec),) = source_conditions(OOD)[1:]
    shifted = shifted_pixels(spec, rows, 0, None)
    assert shifted.shape == clean.shape and not np.array_equal(shifted, clean)
