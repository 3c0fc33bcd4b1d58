"""The tiny run registers its selected adapter and failure predictor as an MLflow model, and
the scoring run scores a folder with it."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pandas as pd
import pytest

from tests.pipelines.conftest import TINY_DATA_ROOT

pytestmark = pytest.mark.slow


def test_default_run_registers_a_servable_model(tiny_run):
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    data = tiny_run / TINY_DATA_ROOT
    record = json.loads((data / "06_models/deployed_model.json").read_text())
    zoo = pd.read_parquet(data / "06_models/adapter_zoo.parquet")
    assert record["adapter_id"] in set(zoo["adapter_id"])
    assert record["version"] >= 1 and record["model_uri"].startswith("models:/xai-kedro-selected/")
    assert record["selection"]["reason"] and record["predictor"]["reason"]
    assert record["class_names"] == ["circle", "square", "triangle"][: len(record["class_names"])]
    client = MlflowClient(record["tracking_uri"])
    version = client.get_model_version("xai-kedro-selected", str(record["version"]))
    assert version.run_id == record["run_id"]
    assert version.tags["adapter_id"] == record["adapter_id"]
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["kedro.env"] == "tiny"
    assert version.source == record["logged_model_uri"]
    model = client.get_logged_model(version.source.removeprefix("models:/"))
    assert model.source_run_id == record["run_id"]
    assert model.status == "READY"
    logged = Model.load(urlparse(model.artifact_location).path)
    assert logged.signature.inputs.input_names() == ["image", "path"]
    assert logged.saved_input_example_info is not None
    bundle = data / "06_models/deployed"
    assert (bundle / "predictor.json").is_file() and not list(bundle.rglob("*.pkl"))


def test_scoring_run_scores_the_folder_with_the_registered_model(tiny_run, spark):
    data = tiny_run / TINY_DATA_ROOT
    scored = spark.read.parquet(str(data / "07_model_output/scored_images.parquet")).toPandas()
    listing = pd.read_parquet(data / "01_raw/scoring_listing.parquet")
    quarantine = pd.read_parquet(data / "07_model_output/scoring_quarantine.parquet")
    assert len(scored) + len(quarantine) == len(listing) and len(scored) > 0
    assert scored["image_id"].is_unique
    assert scored["failure_risk"].between(0, 1).all() and scored["confidence"].between(0, 1).all()
    record = json.loads((data / "06_models/deployed_model.json").read_text())
    assert set(scored["class_name"]) <= set(record["class_names"])
    assert set(scored["model_uri"]) == {record["model_uri"]}
