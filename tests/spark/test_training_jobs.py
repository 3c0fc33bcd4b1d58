"""Training tasks read the rows the executors staged, in a reproducible order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.spark.training_jobs import read_training_rows


def bronze_like(n: int, splits: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    return pd.DataFrame(
        {
            "image_id": [f"img{i:03d}" for i in range(n)],
            "label": np.arange(n) % 3,
            "split": [splits[i % len(splits)] for i in range(n)],
            "height": 4,
            "width": 4,
            "pixels": [p.tobytes() for p in pixels],
        }
    ), pixels


def test_staged_rows_are_read_in_image_id_order_whatever_the_files(spark, tmp_path):
    frame, pixels = bronze_like(20, ["train", "train", "val"])
    shuffled = frame.sample(frac=1.0, random_state=1)
    path = tmp_path / "staged.parquet"
    spark.createDataFrame(shuffled).repartition(3).write.parquet(path.as_uri())
    assert len(list(path.glob("part-*.parquet"))) == 3
    data = read_training_rows(str(path))
    train = frame["split"] == "train"
    np.testing.assert_array_equal(data["train_images"], pixels[train.to_numpy()])
    np.testing.assert_array_equal(data["train_labels"], frame["label"][train])
    np.testing.assert_array_equal(data["val_images"], pixels[~train.to_numpy()])
    np.testing.assert_array_equal(data["val_labels"], frame["label"][~train])


def test_staged_rows_without_validation_split_are_an_error(tmp_path):
    frame, _ = bronze_like(6, ["train"])
    frame.to_parquet(tmp_path / "staged.parquet")
    with pytest.raises(ValueError, match="'train' and 'val'"):
        read_training_rows(str(tmp_path / "staged.parquet"))
