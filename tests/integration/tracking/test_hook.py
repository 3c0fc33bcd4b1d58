"""MLflow tracking: the run that the session's one tiny `kedro run` (tests/conftest.py) recorded
in the project's embedded SQLite store, and a run that a node ends with `SystemExit`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import (
    PROJECT_ROOT,
    TINY_DATA_ROOT,
    TINY_ENV,
    load_conf,
    make_tiny_project,
    run_kedro,
)
from xai_kedro.integration.tracking.settings import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    GIT_COMMIT_TAG,
    metric_name,
)

BASE_SETTINGS = yaml.safe_load((PROJECT_ROOT / "conf/base/mlflow.yml").read_text())


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
    assert params["seed"] == str(load_conf(TINY_ENV, "parameters")["seed"])
    assert params["adapter_training.zoo.members.2.adapter_id"] == "r4_dora"
    assert params["backbone.pretrain.model.hidden_size"] == "32"
    gold = pd.read_parquet(Path(tiny_run) / TINY_DATA_ROOT / "04_gold/adapter_summary.parquet")
    for row in gold.itertuples():
        assert run.data.metrics[f"adapter_summary.{row.adapter_id}.accuracy"] == pytest.approx(
            row.accuracy
        )
    # The leaky reference-protocol AUC is named so; the image-grouped headline is logged.
    names = set(run.data.metrics)
    assert any(n.endswith(".roc_auc_leaky_holdout") for n in names)
    assert not any(n.startswith("classifier_comparison.") and n.endswith(".roc_auc") for n in names)
    headline = pd.read_parquet(
        Path(tiny_run) / TINY_DATA_ROOT / "04_gold/confidence_baseline_differences.parquet"
    )
    first = headline.iloc[0]
    logged = f"confidence_baseline_differences.{first['comparison']}.{first['model']}.auroc_diff"
    assert run.data.metrics[metric_name(logged)] == pytest.approx(first["auroc_diff"])
    assert any(n.startswith("accuracy_estimation_summary.") for n in names)
    # Classic ML, not the GenAI view; the code the run came from.
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    # The tiny project is a copy, not a git checkout: no commit is invented for it (the tag
    # itself is tested in test_settings.py against this repository).
    assert GIT_COMMIT_TAG not in run.data.tags

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


@pytest.mark.slow  # a Kedro session
def test_a_system_exit_in_a_node_marks_the_run_failed(tmp_path, monkeypatch):
    """The one-line errors end a run with `SystemExit`, which no Kedro hook sees: the session
    store still ends the MLflow run FAILED, with the message as its `error` tag."""
    from mlflow.tracking import MlflowClient

    project = make_tiny_project(tmp_path / "exits")  # paper env, no Oxford-IIIT Pet on disk
    with pytest.raises(SystemExit) as stopped:
        run_kedro(project, monkeypatch, pipelines=["ingestion"], env="paper")
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(BASE_SETTINGS["tracking"]["experiment"])
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["kedro.env"] == "paper"
    assert run.data.tags["error"] == f"SystemExit: {stopped.value}"
