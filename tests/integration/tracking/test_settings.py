"""MLflow tracking settings: the `tracking:` block, parameter flattening and Gold metrics."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from xai_kedro.integration.tracking.settings import (
    GIT_COMMIT_TAG,
    MetricSource,
    TrackingConfigError,
    TrackingSettings,
    flatten_parameters,
    git_tags,
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


def test_an_unknown_setting_is_named_with_the_allowed_ones(tmp_path):
    tracking = BASE_SETTINGS["tracking"]
    typo = {**tracking, "experimnet": "typo"}
    with pytest.raises(
        TrackingConfigError, match=r"mlflow.yml: unknown setting tracking\.experimnet"
    ):
        TrackingSettings.from_config({"tracking": typo}, tmp_path)
    metrics = [{"table": "t", "values": ["v"], "key": ["k"]}]
    with pytest.raises(TrackingConfigError, match=r"tracking\.metrics\[0\]\.key; allowed"):
        TrackingSettings.from_config({"tracking": {**tracking, "metrics": metrics}}, tmp_path)


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


def test_a_metric_can_be_renamed_and_a_bad_rename_is_named(tmp_path):
    table = pd.DataFrame({"model": ["rf"], "roc_auc": [0.7]})
    source = MetricSource("cmp", ("model",), ("roc_auc",), {"roc_auc": "roc_auc_leaky_holdout"})
    assert table_metrics(table, source) == {"cmp.rf.roc_auc_leaky_holdout": 0.7}
    conf = {
        "tracking": {
            "uri": "sqlite:///mlflow.db",
            "experiment": "x",
            "metrics": [{"table": "t", "values": ["a"], "rename": {"b": "c"}}],
        }
    }
    with pytest.raises(TrackingConfigError, match=r"tracking.metrics\[0\].rename.*\['b'\]"):
        TrackingSettings.from_config(conf, tmp_path)


def test_git_tags_name_the_commit_and_whether_the_tree_was_dirty(tmp_path):
    assert git_tags(tmp_path) == {}  # not a checkout
    tags = git_tags(PROJECT_ROOT)
    if not tags:
        pytest.skip("the project is not a git checkout here")
    assert len(tags[GIT_COMMIT_TAG]) == 40 and tags["git.dirty"] in {"true", "false"}
