"""The `paper` env on a small Oxford-IIIT Pet stand-in: Bronze is built, and the missing
DINOv2 weights stop the run with a message that says how to provide them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import make_tiny_project, run_kedro

BREEDS = {"Abyssinian": (1, 1), "american_bulldog": (2, 2)}  # name: (class id, species)


def _oxford_stand_in(root: Path) -> None:
    images, annotations = root / "images", root / "annotations"
    (annotations / "trimaps").mkdir(parents=True)
    images.mkdir()
    rng = np.random.default_rng(0)
    lines, trainval, test = ["#Image CLASS-ID SPECIES BREED ID"], [], []
    for breed, (class_id, species) in BREEDS.items():
        for index in range(1, 7):
            name = f"{breed}_{index}"
            pixels = rng.integers(0, 256, (300, 280, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG")
            (images / f"{name}.jpg").write_bytes(buffer.getvalue())
            trimap = np.full((300, 280), 2, np.uint8)
            trimap[100:200, 90:190] = 1
            Image.fromarray(trimap).save(annotations / "trimaps" / f"{name}.png")
            line = f"{name} {class_id} {species} {index}"
            lines.append(line)
            (test if index > 4 else trainval).append(line)
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (annotations / "list.txt").write_text("\n".join(lines) + "\n")
    (annotations / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (annotations / "test.txt").write_text("\n".join(test) + "\n")


def test_paper_env_ingests_oxford_layout_and_explains_missing_weights(spark, tmp_path, monkeypatch):
    project = make_tiny_project(tmp_path / "paper_project")
    _oxford_stand_in(project / "data/01_raw/oxford-iiit-pet")
    hub_cache = tmp_path / "empty_hf_cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match="facebook/dinov2-base") as error:
        run_kedro(project, monkeypatch, pipelines=["ingestion"], env="paper")
    message = str(error.value)
    assert str(hub_cache) in message and "download" in message
    # Bronze was written before the backbone step failed
    data = project / "data/02_bronze"
    bronze = spark.read.parquet(str(data / "bronze_images.parquet")).toPandas()
    assert len(bronze) == 12
    assert set(bronze["label_name"]) == set(BREEDS)
    assert (bronze["height"] == 256).all() and bronze["mask"].notna().all()
    assert bronze.groupby("split").size().to_dict() == {"test": 4, "train": 6, "val": 2}
    quarantine = pd.read_parquet(data / "bronze_quarantine.parquet")
    assert quarantine.set_index("source_path").loc["images/broken.jpg", "reason"] in {
        "no_label",
        "not_an_image",
        "truncated",
    }
    assert os.environ["HF_HUB_OFFLINE"] == "1"
