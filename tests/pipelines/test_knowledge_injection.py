"""The knowledge-injection pipeline on the tiny project: its tables, its validation-only
diagnosis, equal-size arms trained with every seed, and a rerun that takes the refined adapters
from the cache."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from pyspark.sql import functions as F

from tests.conftest import load_conf
from tests.pipelines.conftest import TINY_DATA_ROOT, TINY_ENV, run_kedro
from xai_kedro.core.injection.refine import RefineSettings, refined_id

pytestmark = pytest.mark.slow

ADAPTERS = load_conf(TINY_ENV, "parameters")["knowledge_injection"]["adapters"]
ARMS = ("targeted", "control", "baseline_retrained")
SEEDS = RefineSettings.from_params(
    load_conf(TINY_ENV, "parameters")["knowledge_injection"]["refine"]
).seeds
REFINED = sorted(refined_id(a, arm, s) for a in ADAPTERS for arm in ARMS for s in SEEDS)


@pytest.fixture(scope="module")
def project(tiny_run):
    return tiny_run


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _params(project) -> dict:
    return load_conf(TINY_ENV, "parameters", project / "conf")


def test_gold_table_report_plot_and_gallery(project):
    data = project / TINY_DATA_ROOT
    table = pd.read_parquet(data / "04_gold/knowledge_injection.parquet")
    assert set(table["adapter_id"]) == {*ADAPTERS, "all"}
    arms = table[table["kind"] == "arm"]
    assert set(arms["comparison"]) == {"baseline", *ARMS}
    assert (arms[arms["comparison"] != "baseline"]["n_seeds"] == len(SEEDS)).all()
    contrasts = table[table["kind"] == "contrast"]
    assert set(contrasts["comparison"]) == {
        "targeted - control", "targeted - baseline_retrained", "control - baseline_retrained"
    }  # fmt: skip
    clean = contrasts[contrasts["metric"] == "clean_accuracy"]
    assert clean["ci_low"].le(clean["value"]).all() and clean["value"].le(clean["ci_high"]).all()
    assert clean["verdict"].isin(["better", "worse", "not separated"]).all()
    assert clean["detectable"].ge(0).all() and clean["seed_sd"].notna().all()
    ood = table[(table["metric"] == "ood_accuracy") & (table["comparison"] == "baseline")]
    assert {"all", "gaussian_noise", "gaussian_blur", "contrast"} <= set(ood["corruption"])
    # the baseline arm is the zoo adapter's own Silver rows
    silver = pd.read_parquet(data / "03_silver/silver_xai.parquet")
    for adapter in ADAPTERS:
        baseline = table[
            (table["adapter_id"] == adapter)
            & (table["metric"] == "clean_accuracy")
            & (table["comparison"] == "baseline")
        ]["value"].iloc[0]
        assert baseline == pytest.approx(
            silver[silver["adapter_id"] == adapter]["is_correct"].mean()
        )
    report = (data / "08_reporting/knowledge_injection.md").read_text()
    assert "## Answer" in report and "clean accuracy" in report and "OOD accuracy" in report
    assert any(
        phrase in report
        for phrase in ("beats the untargeted control", "Not separated", "worse than the untargeted")
    )
    profile = pd.read_parquet(data / "04_gold/injection_failure_profile.parquet")
    assert set(profile["adapter_id"]) == set(ADAPTERS) and profile["reason"].str.len().gt(0).all()
    for name in ("knowledge_injection.png", "knowledge_injection_gallery.png"):
        assert (data / "08_reporting" / name).stat().st_size > 1000


def test_generated_images_are_training_images_of_equal_size_arms_and_every_seed(project, spark):
    data = project / TINY_DATA_ROOT
    images = pd.read_parquet(data / "05_model_input/knowledge_injection_images.parquet")
    bronze = spark.read.parquet(str(data / "02_bronze/bronze_images.parquet"))
    splits = dict(bronze.select("image_id", "split").toPandas().itertuples(index=False))
    counts = images.groupby(["adapter_id", "arm"]).size().unstack("arm")
    assert (counts["targeted"] == counts["control"]).all() and (counts["targeted"] > 0).all()
    assert (counts["targeted"] == counts["baseline_retrained"]).all()
    assert (images["split"] == "train").all()
    assert not set(images["image_id"]) & set(splits)
    used = set(images["source_image_id"].dropna()) | set(images["background_image_id"].dropna())
    assert {splits[i] for i in used} <= {"train"}
    assert {splits[i] for i in images["motivated_by"].dropna()} == {"val"}
    targeted = images[images["arm"] == "targeted"]
    assert (targeted["generator"] == "synthetic_counterfactual").all()
    assert all("texture_of_class" in json.loads(d) for d in targeted["details"])
    zoo = pd.read_parquet(data / "06_models/injection_adapter_zoo.parquet")
    assert sorted(zoo["adapter_id"]) == REFINED
    assert sorted(set(zoo["seed"])) == sorted(SEEDS)
    assert (
        zoo["n_added_images"]
        == zoo.set_index(["base_adapter_id", "arm"]).index.map(
            images.groupby(["adapter_id", "arm"]).size()
        )
    ).all()


def test_the_diagnosis_never_reads_the_test_split(project, spark, monkeypatch):
    """Test rows with unreadable pixels: a diagnosis that touched them would fail; it gives
    the very failures of the run instead."""
    from xai_kedro.pipelines.knowledge_injection.nodes import diagnose_failures
    from xai_kedro.spark.silver_nodes import SilverInputs

    monkeypatch.chdir(project)
    data = project / TINY_DATA_ROOT
    bronze = spark.read.parquet(str(data / "02_bronze/bronze_images.parquet"))
    poisoned = bronze.withColumn(
        "pixels",
        F.when(F.col("split") == "test", F.lit(b"\x00")).otherwise(F.col("pixels")),
    ).withColumn("mask", F.when(F.col("split") == "test", F.lit(b"\x00")).otherwise(F.col("mask")))
    params = _params(project)
    failures, profiles = diagnose_failures(
        SilverInputs(
            poisoned,
            pd.read_parquet(data / "06_models/adapter_zoo.parquet"),
            json.loads((data / "06_models/backbone_manifest.json").read_text()),
        ),
        params["xai_silver"],
        params["execution"],
        params["knowledge_injection"],
        params["ingestion"]["source"],
    )
    test_ids = set(
        bronze.filter(F.col("split") == "test").select("image_id").toPandas()["image_id"]
    )
    assert not set(failures["image_id"]) & test_ids
    stored = pd.read_parquet(data / "03_silver/injection_failures.parquet")
    columns = ["adapter_id", "image_id", "kind", "pred", "confuser"]
    pd.testing.assert_frame_equal(failures[columns], stored[columns])
    assert profiles["n_images"].sum() == len(ADAPTERS) * 3 * 4  # 3 classes x 4 val images


def test_an_unknown_generator_is_a_clear_error(project):
    from xai_kedro.pipelines.knowledge_injection.nodes import generate_training_images

    params = _params(project)["knowledge_injection"]
    params = {**params, "generator": {**params["generator"], "name": "sdxl"}}
    with pytest.raises(ValueError, match="unknown generator 'sdxl'"):
        generate_training_images(pd.DataFrame(), None, params, {})


def test_a_rerun_reuses_the_refined_adapters_from_the_cache(project, monkeypatch_module, caplog):
    data = project / TINY_DATA_ROOT
    before = pd.read_parquet(data / "06_models/injection_adapter_zoo.parquet")
    images_before = pd.read_parquet(data / "05_model_input/knowledge_injection_images.parquet")
    with caplog.at_level("INFO"):
        run_kedro(project, monkeypatch_module, pipelines=["knowledge_injection"])
    after = pd.read_parquet(data / "06_models/injection_adapter_zoo.parquet")
    assert sum(f"Adapter {r} already trained" in caplog.text for r in REFINED) == len(REFINED)
    assert not re.search(r"Training \d+ adapters", caplog.text)
    pd.testing.assert_frame_equal(before, after)
    images_after = pd.read_parquet(data / "05_model_input/knowledge_injection_images.parquet")
    pd.testing.assert_frame_equal(images_before, images_after)  # generation is deterministic
