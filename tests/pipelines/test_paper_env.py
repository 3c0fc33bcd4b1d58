"""The `paper` env on small local stand-ins: an Oxford-IIIT Pet folder and a Hugging Face cache
holding a tiny random `facebook/dinov2-base`. Without the weights the run stops with a message
that says how to provide them; with them the whole reference configuration runs through."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from transformers import Dinov2Config, Dinov2Model

from tests.conftest import make_tiny_project, run_kedro
from tests.core.tiny import hub_cache_stand_in

BREEDS = {"Abyssinian": (1, 1), "american_bulldog": (2, 2)}  # name: (class id, species)
MORE_BREEDS = {**BREEDS, "Bengal": (3, 1)}
HUB_ID = "facebook/dinov2-base"


def _oxford_stand_in(
    root: Path, breeds: dict = BREEDS, per_breed: int = 6, test_per_breed: int = 2
) -> None:
    images, annotations = root / "images", root / "annotations"
    (annotations / "trimaps").mkdir(parents=True)
    images.mkdir()
    rng = np.random.default_rng(0)
    lines, trainval, test = ["#Image CLASS-ID SPECIES BREED ID"], [], []
    for breed, (class_id, species) in breeds.items():
        for index in range(1, per_breed + 1):
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
            (test if index > per_breed - test_per_breed else trainval).append(line)
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
    # Missing weights end the run in one line before any file is listed or decoded.
    with pytest.raises(SystemExit) as error:
        run_kedro(project, monkeypatch, pipelines=["ingestion"], env="paper")
    message = str(error.value)
    assert message.startswith("backbone.source: 'facebook/dinov2-base'") and "\n" not in message
    assert str(hub_cache) in message and "download" in message
    data = project / "data/02_bronze"
    assert not (data / "bronze_images.parquet").exists()
    # With the weights in the (stand-in) cache, the Oxford layout is ingested.
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14, image_size=518
    )
    hub_cache_stand_in(tmp_path / "hf_cache", HUB_ID, Dinov2Model(config))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    run_kedro(project, monkeypatch, pipelines=["ingestion"], env="paper")
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


def test_paper_env_runs_end_to_end_on_stand_ins(spark, tmp_path, monkeypatch):
    """The reference experiment's configuration (224 px crops of 256, DoRA + rsLoRA r4/16/32 on q/v/fc1/fc2,
    K = 16, nine corruptions) on 30 images and a 6-layer backbone: 24 adapted modules, which
    PEFT stores as shortened names, as it does for the real 12-layer DINOv2-B."""
    project = make_tiny_project(tmp_path / "paper_project")
    _oxford_stand_in(project / "data/01_raw/oxford-iiit-pet", MORE_BREEDS, 10, 3)
    torch.manual_seed(0)
    # facebook/dinov2-base's geometry (patch 14, position embeddings for 518 px, used at 224)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=6, num_attention_heads=2, patch_size=14, image_size=518
    )
    backbone = Dinov2Model(config)
    snapshot = hub_cache_stand_in(tmp_path / "hf_cache", HUB_ID, backbone)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_kedro(project, monkeypatch, env="paper")

    data = project / "data"
    manifest = json.loads((data / "06_models/backbone_manifest.json").read_text())
    assert manifest["source"] == HUB_ID and manifest["hidden_size"] == 32
    assert manifest["weights_dir"] == str(snapshot.resolve())  # what the Spark workers load
    zoo = pd.read_parquet(data / "06_models/adapter_zoo.parquet")
    assert list(zoo["adapter_id"]) == ["r4", "r16", "r32"]
    assert zoo["use_dora"].all() and (zoo["target_roles"] == "query,value,fc1,fc2").all()
    n_test = 3 * len(MORE_BREEDS)
    silver = spark.read.parquet(str(data / "03_silver/silver_xai.parquet")).toPandas()
    assert len(silver) == n_test * len(zoo)
    assert silver[["attn_entropy", "gini", "deletion_auc", "insertion_auc"]].notna().all().all()
    assert silver["object_attention_share"].between(0, 1).all()  # trimaps became masks
    ood = spark.read.parquet(str(data / "03_silver/silver_ood.parquet")).toPandas()
    # the reference grid's nine corruptions, the pets on a novel texture by their trimaps (2
    # severities; no counter-biased background: Oxford-IIIT Pet has no synthetic world), and
    # paper's ImageNet-C subset (4 x 2 severities)
    per_family = ood.groupby("shift_family").size().to_dict()
    assert per_family == {
        "reference": 9 * len(silver), "background": 2 * len(silver), "imagenet_c": 8 * len(silver)
    }  # fmt: skip
    assert (data / "08_reporting/summary_report.md").read_text().strip()
