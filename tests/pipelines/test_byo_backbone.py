"""Bring your own images and backbone: `kedro run` on an image folder with a tiny random
Hugging Face ViT (not DINOv2), from ingestion to meta-learning and the deployed model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.core.models.test_families import save_tiny
from tests.pipelines.conftest import TINY_DATA_ROOT, TINY_ENV, make_tiny_project, run_kedro

pytestmark = pytest.mark.slow

ENV = "byo_tiny"
CLASSES = ("circles", "squares", "stripes")
PER_CLASS = 20
ADAPTERS = ["linear_probe", "r2_qv"]
GOLD = ["correlations", "adapter_summary", "degradation", "accuracy_estimation"]


def _image(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A 32 px RGB image whose class shows in its shape (so every adapter has a signal)."""
    yy, xx = np.mgrid[:32, :32]
    cy, cx = rng.integers(10, 22, size=2)
    if kind == "circles":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(25, 50)
    elif kind == "squares":
        half = int(rng.integers(4, 8))
        mask = (abs(yy - cy) < half) & (abs(xx - cx) < half)
    else:
        mask = (xx // int(rng.integers(3, 5))) % 2 == 0
    image = rng.integers(0, 60, size=(32, 32, 3))
    image[mask] = rng.integers(150, 255, size=3)
    return image.astype(np.uint8)


def _write_image_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            Image.fromarray(_image(name, rng)).save(root / name / f"{i:02d}.png")


def _write_checkpoint(directory: Path) -> None:
    """A random ViTModel (hidden 32, 2 layers, 2 heads, 32 px, patch 8) as a user would save it."""
    save_tiny("vit", directory)


def _byo_env(project: Path, checkpoint: Path, images: Path) -> None:
    """conf/<ENV>: the tiny env with the user's checkpoint, image folder and a 2-adapter zoo."""
    env = project / "conf" / ENV
    shutil.copytree(project / "conf" / TINY_ENV, env)
    params = yaml.safe_load((env / "parameters.yml").read_text())
    params["backbone"] = {
        "source": str(checkpoint),
        "input_size": 32,
        "pretrain": {"enabled": False},
    }
    (env / "parameters.yml").write_text(yaml.safe_dump(params))
    ingestion = {
        "ingestion": {
            "source": {"kind": "image_folder", "name": "byo", "root": str(images)},
            "storage_size": 32,
            "min_side": 16,
        }
    }
    (env / "parameters_ingestion.yml").write_text(yaml.safe_dump(ingestion))
    training = yaml.safe_load((env / "parameters_adapter_training.yml").read_text())
    training["adapter_training"]["zoo"]["members"] = [
        {"adapter_id": "linear_probe", "rank": 0, "lr": 0.01},
        {"adapter_id": "r2_qv", "rank": 2},
    ]
    (env / "parameters_adapter_training.yml").write_text(yaml.safe_dump(training))
    # An image folder has no synthetic world (masks, textures): no background shifts.
    ood = {"ood": {"shifts": [{"shift": "jpeg_compression", "severities": [2]}]}}
    (env / "parameters_ood.yml").write_text(yaml.safe_dump(ood))


@pytest.fixture(scope="module")
def byo_run(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("byo")
    project = make_tiny_project(root / "project")
    _write_image_folder(root / "my_images")
    _write_checkpoint(root / "my_vit")
    _byo_env(project, root / "my_vit", root / "my_images")
    with pytest.MonkeyPatch.context() as mp:
        run_kedro(project, mp, env=ENV)
    return project / TINY_DATA_ROOT


def test_byo_vit_runs_every_stage(byo_run, spark):
    data = byo_run
    bronze = spark.read.parquet(str(data / "02_bronze/bronze_images.parquet")).toPandas()
    assert len(bronze) == len(CLASSES) * PER_CLASS
    manifest = json.loads((data / "06_models/backbone_manifest.json").read_text())
    assert not manifest["pretrained_here"] and manifest["hidden_size"] == 32

    zoo = pd.read_parquet(data / "06_models/adapter_zoo.parquet")
    assert sorted(zoo["adapter_id"]) == sorted(ADAPTERS)
    meta = json.loads((data / "06_models/adapters/r2_qv/adapter_meta.json").read_text())
    assert meta["class_names"] == list(CLASSES)

    silver = spark.read.parquet(str(data / "03_silver/silver_xai.parquet")).toPandas()
    assert set(silver["adapter_id"]) == set(ADAPTERS)
    n_test = int((bronze["split"] == "test").sum())
    assert len(silver) == n_test * len(ADAPTERS)
    assert silver[["attn_entropy", "gini", "deletion_auc", "insertion_auc"]].notna().all().all()
    ood = spark.read.parquet(str(data / "03_silver/silver_ood.parquet")).toPandas()
    assert set(ood["adapter_id"]) == set(ADAPTERS) and len(ood) % len(silver) == 0

    for table in GOLD:
        assert not pd.read_parquet(data / f"04_gold/{table}.parquet").empty, table
    summary = pd.read_parquet(data / "04_gold/adapter_summary.parquet")
    assert set(summary["adapter_id"]) == set(ADAPTERS)
    assert "XAI" in (data / "08_reporting/summary_report.md").read_text()
    assert any((data / "06_models/deployed").iterdir())
