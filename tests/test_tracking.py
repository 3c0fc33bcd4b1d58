"""MLflow tracking: settings, parameter flattening, Gold metrics, and the run that the session's
one tiny `kedro run` (tests/conftest.py) recorded in the project's embedded SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT_ROOT, TINY_ENV, TINY_PARAMETERS
from xai_kedro.tracking import (
    MetricSource,
    TrackingConfigError,
    TrackingSettings,
    flatten_parameters,
    metric_name,
    resolve_tracking_uri,
    table_metrics,
)

BASE_SETTINGS = yaml.safe_load((PROJECT_ROOT / "conf/base/mlflow.yml").read_text())


def test_default_store_is_an_sqlite_file_in_the_project_root(tmp_path):
    settings = TrackingSettings.from_config(BASE_SETTINGS, tmp_path)
    assert settings.uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.artifact_location == (tmp_path / "mlartifacts").as_uri()
    assert settings.enabled and settings.adapters == "log"


def test_other_uris_are_kept_and_absolute_sqlite_paths_too(tmp_path):
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:////srv/runs.db", tmp_path) == "sqlite:////srv/runs.db"


def test_a_tracking_server_in_conf_local_keeps_its_own_artifact_store(tmp_path):
    local = {"tracking": {**BASE_SETTINGS["tracking"], "uri": "http://127.0.0.1:5000"}}
    settings = TrackingSettings.from_config(local, tmp_path)
    assert settings.uri == "http://127.0.0.1:5000" and settings.artifact_location is None


@pytest.mark.parametrize(
    ("tracking", "setting"),
    [
        ({"experiment": "x"}, "tracking.uri"),
        ({"uri": "sqlite:///a.db", "experiment": "x", "adapters": "copy"}, "tracking.adapters"),
        ({"uri": "sqlite:///a.db", "experiment": "x", "metrics": [{"table": "t"}]}, "metrics[0]"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path, tracking, setting):
    with pytest.raises(TrackingConfigError, match=setting.replace("[", r"\[")):
        TrackingSettings.from_config({"tracking": tracking}, tmp_path)


def test_parameters_flatten_to_dotted_keys_with_list_indices():
    flat = flatten_parameters(
        {"seed": 3, "zoo": {"members": [{"rank": 2}, {"rank": 4}]}, "roles": ["query", "value"]}
    )
    assert flat == {
        "seed": "3",
        "zoo.members.0.rank": "2",
        "zoo.members.1.rank": "4",
        "roles": '["query", "value"]',
    }


def test_table_metrics_one_per_row_and_column_with_safe_names():
    table = pd.DataFrame(
        {"feature_set": ["xai+confidence", "xai"], "auc": [0.75, float("nan")], "n": [3, 4]}
    )
    metrics = table_metrics(table, MetricSource("cmp", ("feature_set",), ("auc", "n")))
    assert metrics == {
        "cmp.xai_confidence.auc": 0.75,
        "cmp.xai_confidence.n": 3.0,
        "cmp.xai.n": 4.0,
    }
    assert metric_name("a", "b,c", "d") == "a.b_c.d"
    with pytest.raises(TrackingConfigError, match="missing_column"):
        table_metrics(table, MetricSource("cmp", (), ("missing_column",)))


@pytest.mark.slow
def test_the_tiny_run_is_recorded_in_the_embedded_store(tiny_run):
    from mlflow.tracking import MlflowClient

    store = Path(tiny_run) / "mlflow.db"
    assert store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name(BASE_SETTINGS["tracking"]["experiment"])
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`kedro.env` = '{TINY_ENV}'"
    )
    # The first tiny run is the full one (other tests may add partial runs after it).
    run = min(runs, key=lambda r: r.info.start_time)
    assert run.info.status == "FINISHED"
    assert run.data.tags["kedro.pipelines"] == "__default__"
    params = run.data.params
    assert params["seed"] == str(TINY_PARAMETERS["seed"])
    assert params["adapter_training.zoo.members.2.adapter_id"] == "r4_dora"
    assert params["backbone.pretrain.model.hidden_size"] == "32"
    gold = pd.read_parquet(Path(tiny_run) / "data/04_gold/adapter_summary.parquet")
    for row in gold.itertuples():
        assert run.data.metrics[f"adapter_summary.{row.adapter_id}.accuracy"] == pytest.approx(
            row.accuracy
        )
    assert any(name.startswith("classifier_comparison.") for name in run.data.metrics)

    artifacts = Path(client.download_artifacts(run.info.run_id, "", str(tiny_run / "dl")))
    environment = json.loads((artifacts / "run/environment.json").read_text())
    assert environment["kedro_env"] == TINY_ENV and environment["packages"]["kedro"]
    assert (artifacts / "models/adapter_zoo.parquet").is_file()
    assert (artifacts / "report/summary_report.md").read_text().strip()
    assert (artifacts / "plots/correlations.png").stat().st_size > 1000
    assert any((artifacts / "plots/failure_gallery").iterdir())
    zoo = pd.read_parquet(artifacts / "models/adapter_zoo.parquet")
    for adapter_id in zoo["adapter_id"]:
        assert any((artifacts / "adapters" / adapter_id).iterdir()), adapter_id

    # Knowledge injection, a separate run after it, is a run of its own with its report.
    injection = [r for r in runs if r.data.tags["kedro.pipelines"] == "knowledge_injection"]
    assert injection and injection[0].info.status == "FINISHED"
    assert injection[0].info.start_time > run.info.start_time
    report = client.download_artifacts(
        injection[0].info.run_id, "report/knowledge_injection.md", str(tiny_run / "dl_ki")
    )
    assert "targeted" in Path(report).read_text()


def test_conf_local_overrides_only_the_keys_it_names(tmp_path):
    from kedro.config import OmegaConfigLoader

    from xai_kedro import settings

    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()
    (tmp_path / "base" / "mlflow.yml").write_text(
        (PROJECT_ROOT / "conf/base/mlflow.yml").read_text()
    )
    (tmp_path / "local" / "mlflow.yml").write_text("tracking:\n  uri: http://127.0.0.1:5000\n")
    args = {k: v for k, v in settings.CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    merged = OmegaConfigLoader(conf_source=str(tmp_path), env="local", **args)["mlflow"]
    assert merged["tracking"]["uri"] == "http://127.0.0.1:5000"
    assert merged["tracking"]["experiment"] == BASE_SETTINGS["tracking"]["experiment"]
    assert merged["tracking"]["metrics"] == BASE_SETTINGS["tracking"]["metrics"]
