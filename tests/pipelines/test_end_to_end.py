"""`kedro run` through every pipeline on a tiny synthetic project, offline, in-process."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.pipelines.conftest import TINY_DATA_ROOT, run_kedro

pytestmark = pytest.mark.slow

GOLD = [
    "correlations", "classifier_comparison", "feature_importance", "adapter_summary",
    "degradation", "qualitative_summary", "quantitative_summary", "xai_feature_ranking",
    "adapter_ranking", "worst_corruption", "accuracy_estimation", "explainer_features",
    "family_hypothesis", "family_headline", "family_estimation",
]  # fmt: skip


@pytest.fixture(scope="module")
def first_run(tiny_run):
    """The session's one full tiny run (tests/conftest.py), also read by tests/notebooks."""
    return tiny_run


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_bronze_tables(first_run, spark):
    data = first_run / TINY_DATA_ROOT
    bronze = spark.read.parquet(str(data / "02_bronze/bronze_images.parquet")).toPandas()
    assert len(bronze) == 3 * (16 + 12 + 4 + 4)
    assert bronze["image_id"].is_unique
    quarantine = pd.read_parquet(data / "02_bronze/bronze_quarantine.parquet")
    assert quarantine.empty
    embeddings = spark.read.parquet(str(data / "02_bronze/bronze_embeddings.parquet")).toPandas()
    assert set(embeddings["image_id"]) == set(bronze["image_id"])
    assert {len(e) for e in embeddings["embedding"]} == {32}
    manifest = json.loads((data / "06_models/backbone_manifest.json").read_text())
    assert manifest["pretrained_here"] and manifest["hidden_size"] == 32


def test_zoo_silver_and_gold(first_run, spark):
    data = first_run / TINY_DATA_ROOT
    zoo = pd.read_parquet(data / "06_models/adapter_zoo.parquet")
    assert list(zoo["adapter_id"]) == ["linear_probe", "r2_qv", "r4_dora"]
    # each adapter is complete in its own directory; the staged training rows are gone
    assert sorted(p.name for p in (data / "06_models/adapters").iterdir()) == sorted(
        zoo["adapter_id"]
    )
    silver = spark.read.parquet(str(data / "03_silver/silver_xai.parquet")).toPandas()
    assert len(silver) == 3 * 4 * len(zoo)
    assert not silver.duplicated(["image_id", "adapter_id"]).any()
    assert silver[["attn_entropy", "gini", "deletion_auc", "insertion_auc"]].notna().all().all()
    assert silver["object_attention_share"].between(0, 1).all()
    ood = spark.read.parquet(str(data / "03_silver/silver_ood.parquet")).toPandas()
    # the reference grid's 9 conditions, then one shift of each family (conf/tiny)
    per_family = ood.groupby("shift_family").size().to_dict()
    assert per_family == {
        "reference": 9 * len(silver),
        "background": len(silver),
        "imagenet_c": len(silver),
    }
    assert not ood.duplicated(
        ["image_id", "adapter_id", "shift_family", "corruption", "severity"]
    ).any()
    for table in GOLD:
        frame = pd.read_parquet(data / f"04_gold/{table}.parquet")
        assert not frame.empty, table
    # the base profile_explainers beside engine.explainer, compared in Gold and the report
    profiles = spark.read.parquet(str(data / "03_silver/silver_xai_explainers.parquet"))
    profiles = profiles.toPandas()
    assert sorted(set(profiles["explainer"])) == ["gradient_attention", "rollout"]
    assert len(profiles) == 2 * len(silver)
    compared = pd.read_parquet(data / "04_gold/explainer_features.parquet")
    assert {"attention", "rollout", "gradient_attention", "all"} <= set(compared["explainer"])
    report = (data / "08_reporting/summary_report.md").read_text()
    assert "XAI" in report
    assert "## Which explainer's features predict robustness" in report
    hypothesis = pd.read_parquet(data / "04_gold/family_hypothesis.parquet")
    assert set(hypothesis["shift_family"]) == {"reference", "background", "imagenet_c"}
    assert set(hypothesis["verdict"]) <= {"holds", "reversed", "no effect", "undefined"}
    assert "Per shift family" in report
    for plot in ["correlations", "roc_curves", "degradation", "adapter_training_curves"]:
        assert (data / f"08_reporting/{plot}.png").stat().st_size > 1000
    assert any((data / "08_reporting/failure_gallery").iterdir())


def test_second_run_is_stable_and_skips_trained_adapters(
    first_run, spark, monkeypatch_module, caplog
):
    data = first_run / TINY_DATA_ROOT
    before = spark.read.parquet(str(data / "02_bronze/bronze_images.parquet")).toPandas()
    zoo_before = pd.read_parquet(data / "06_models/adapter_zoo.parquet")
    with caplog.at_level("INFO"):
        run_kedro(first_run, monkeypatch_module, pipelines=["ingestion", "adapter_training"])
    after = spark.read.parquet(str(data / "02_bronze/bronze_images.parquet")).toPandas()
    key = ["image_id", "split", "label", "content_hash"]
    pd.testing.assert_frame_equal(
        before[key].sort_values("image_id", ignore_index=True),
        after[key].sort_values("image_id", ignore_index=True),
    )
    assert "Reusing pre-trained backbone" in caplog.text
    assert caplog.text.count("already trained") == 3
    zoo_after = pd.read_parquet(data / "06_models/adapter_zoo.parquet")
    pd.testing.assert_frame_equal(zoo_before, zoo_after)
