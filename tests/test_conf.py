"""The environments resolve, `paper` is the reference experiment and the catalog is complete."""

from __future__ import annotations

import pytest

from tests.conftest import load_conf as load
from xai_kedro.core.adapters import expand_zoo
from xai_kedro.core.robustness.presets import build_specs


@pytest.mark.parametrize("env", ["base", "paper", "cluster"])
def test_every_env_has_every_pipeline_parameter_block(env):
    params = load(env, "parameters")
    for block in ("backbone", "execution", "ingestion", "adapter_training", "xai_silver", "ood"):
        assert block in params, block
    assert "spark.master" in load(env, "spark")


def test_cluster_runs_paper_experiment_and_changes_only_execution(monkeypatch):
    monkeypatch.setenv("SPARK_MASTER_URL", "spark://head:7077")
    paper, cluster = load("paper", "parameters"), load("cluster", "parameters")
    assert {k: v for k, v in paper.items() if k != "execution"} == {
        k: v for k, v in cluster.items() if k != "execution"
    }
    assert cluster["execution"]["training_concurrency"] is None
    spark = load("cluster", "spark")
    assert spark["spark.master"] == "spark://head:7077"
    assert spark["spark.task.resource.gpu.amount"] == 1


def test_paper_zoo_is_the_reference_zoo():
    params = load("paper", "parameters")
    zoo = expand_zoo(params["adapter_training"]["zoo"])
    assert [(c.rank, c.alpha) for c in zoo] == [(4, 8.0), (16, 32.0), (32, 64.0)]
    for cfg in zoo:
        assert cfg.use_dora and cfg.use_rslora and cfg.dropout == 0.1
        assert set(cfg.target_roles) == {"query", "value", "fc1", "fc2"}
        assert (cfg.optimizer, cfg.lr, cfg.epochs) == ("adamw", 3e-4, 15)
        assert (cfg.batch_size, cfg.grad_accumulation) == (16, 2)
        aug = cfg.augmentation
        assert (aug.rotation_deg, aug.hflip_p, aug.crop_size) == (30, 0.5, 224)
        assert aug.brightness == aug.contrast == 0.2
    assert params["backbone"]["source"] == "facebook/dinov2-base"
    assert params["ingestion"]["storage_size"] == 256
    specs = build_specs(params["ood"]["preset"], params["ood"]["corruptions"])
    assert {(s.corruption, s.value) for s in specs} == {
        ("gaussian_noise", 15.0), ("gaussian_noise", 40.0), ("gaussian_noise", 80.0),
        ("gaussian_blur", 1.0), ("gaussian_blur", 3.0), ("gaussian_blur", 6.0),
        ("contrast", 0.7), ("contrast", 0.4), ("contrast", 0.15),
    }  # fmt: skip


def test_base_zoo_has_a_probe_and_several_ranks():
    zoo = expand_zoo(load("base", "parameters")["adapter_training"]["zoo"])
    ranks = [c.rank for c in zoo]
    assert len(zoo) >= 6 and 0 in ranks and len(set(ranks) - {0}) >= 3


@pytest.mark.parametrize("env", ["base", "paper"])
def test_catalog_declares_every_gold_table_in_the_gold_layer(env):
    from xai_kedro.core.meta.tables import GOLD_TABLES, MONITOR_TABLES

    catalog = load(env, "catalog")
    for name in (*GOLD_TABLES, *MONITOR_TABLES):
        assert name in catalog, f"{name} is not in the {env} catalog"
        assert catalog[name]["filepath"].endswith(f"/04_gold/{name}.parquet"), name
    for name in GOLD_TABLES:
        assert catalog[name]["metadata"]["kedro-viz"]["layer"] == "gold", name
    # the monitor's tables come after deployed_model (reporting band): drawn there, no cycle
    for name in MONITOR_TABLES:
        assert catalog[name]["metadata"]["kedro-viz"]["layer"] == "reporting", name


CLUSTER_ENV_VARS = (
    "SPARK_AUTHENTICATE_SECRET",
    "SPARK_DRIVER_BIND_ADDRESS",
    "SPARK_DRIVER_HOST",
    "SPARK_UI_ENABLED",
)


def test_cluster_spark_is_authenticated_encrypted_and_bound_to_the_driver_host(monkeypatch):
    from xai_kedro.spark.session import _builder_options, check_authentication

    for name in CLUSTER_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPARK_MASTER_URL", "spark://head:7077")
    spark = load("cluster", "spark")
    assert spark["spark.authenticate"] is True
    assert spark["spark.network.crypto.enabled"] is True
    assert spark["spark.io.encryption.enabled"] is True
    assert spark["spark.ui.enabled"] is False
    assert "0.0.0.0" not in {str(v) for v in spark.values()}
    options = _builder_options(spark)
    # no secret in the repository: unset, the setting is dropped and the run stops in one line
    assert "spark.authenticate.secret" not in options
    assert "spark.driver.bindAddress" not in options  # Spark binds to spark.driver.host
    with pytest.raises(SystemExit) as stop:
        check_authentication(options)
    message = str(stop.value.code)
    assert "\n" not in message and "SPARK_AUTHENTICATE_SECRET" in message
    for master in ("yarn", "k8s://https://api:6443", "local[2]"):  # Spark makes its own secret
        check_authentication({**options, "spark.master": master})

    monkeypatch.setenv("SPARK_AUTHENTICATE_SECRET", "from-the-environment")
    monkeypatch.setenv("SPARK_DRIVER_BIND_ADDRESS", "0.0.0.0")
    monkeypatch.setenv("SPARK_UI_ENABLED", "true")
    options = _builder_options(load("cluster", "spark"))
    check_authentication(options)
    assert options["spark.authenticate.secret"] == "from-the-environment"
    assert options["spark.driver.bindAddress"] == "0.0.0.0"  # only because the user set it
    assert options["spark.ui.enabled"] == "true"


def test_local_and_local_cluster_spark_stay_on_the_loopback_without_a_secret(monkeypatch):
    from xai_kedro.spark.session import _builder_options, check_authentication

    monkeypatch.delenv("SPARK_MASTER_URL", raising=False)
    for env in ("base", "local_cluster"):
        options = _builder_options(load(env, "spark"))
        assert options["spark.driver.bindAddress"] == "127.0.0.1", env
        assert options["spark.ui.enabled"] == "false", env
        assert "spark.authenticate" not in options, env
        check_authentication(options)
