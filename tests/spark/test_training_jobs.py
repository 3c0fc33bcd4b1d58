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


def _complete_adapter(directory, config_hash: str) -> None:
    """A finished adapter directory as `save_adapter` leaves it (files + COMPLETE marker)."""
    import json

    from xai_kedro.core.common.hashing import sha256_file

    directory.mkdir(parents=True)
    (directory / "head.safetensors").write_bytes(b"head")
    (directory / "adapter_meta.json").write_text(json.dumps({"config_hash": config_hash}))
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in directory.iterdir()
    }
    (directory / "COMPLETE").write_text(json.dumps({"config_hash": config_hash, "files": files}))


def test_planning_skips_adapters_trained_on_the_same_rows_only(tmp_path):
    from xai_kedro.core.adapters import AdapterConfig, config_hash
    from xai_kedro.spark.training_jobs import plan_training_jobs, training_data_fingerprint

    frame, _ = bronze_like(6, ["train", "val"])
    rows = frame.assign(content_hash=[f"h{i}" for i in range(6)])
    weights = tmp_path / "backbone"
    weights.mkdir()
    (weights / "config.json").write_text('{"model_type": "dinov2"}')
    (weights / "model.safetensors").write_bytes(b"weights")
    manifest = {"source": str(weights)}
    fingerprint = training_data_fingerprint(rows, manifest)
    more = pd.concat([rows, rows.iloc[:1].assign(image_id="ki-extra")], ignore_index=True)
    assert training_data_fingerprint(more, manifest) != fingerprint  # one added image counts
    configs = [AdapterConfig(adapter_id="a", rank=2), AdapterConfig(adapter_id="b", rank=4)]
    _complete_adapter(tmp_path / "zoo" / "a", config_hash(configs[0], fingerprint))
    jobs, done = plan_training_jobs(configs, fingerprint, tmp_path / "zoo", num_classes=3)
    assert list(done) == ["a"] and [j["config"]["adapter_id"] for j in jobs] == ["b"]
    jobs, done = plan_training_jobs(
        configs, training_data_fingerprint(more, manifest), tmp_path / "zoo", num_classes=3
    )
    assert not done and len(jobs) == 2  # other rows: retrained
