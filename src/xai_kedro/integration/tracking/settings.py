"""The `tracking:` block of `conf/<env>/mlflow.yml`, checked once, and what a run records.

Everything here is plain Python (no mlflow import): the settings, the parameter flattening, the
Gold-table metrics and the environment record, so they are tested without a tracking store.
"""

from __future__ import annotations

import fnmatch
import json
import math
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from xai_kedro.core.common.settings import SettingsError, check_keys

SETTINGS_FILE = "mlflow.yml"
ADAPTER_MODES = ("log", "link", "none")
TRACKING_KEYS = (
    "enabled", "uri", "artifact_location", "experiment", "artifacts", "adapters", "metrics",
)  # fmt: skip
METRIC_KEYS = ("table", "keys", "values", "rename")
# Package versions recorded with every run (read from metadata: nothing is imported).
RECORDED_PACKAGES = (
    "kedro", "kedro-datasets", "pyspark", "torch", "transformers", "peft", "numpy", "pandas",
    "scikit-learn", "xgboost", "mlflow", "xai-kedro",
)  # fmt: skip
# The experiment is classic model development: without this tag MLflow 3's UI opens it in the
# GenAI view (traces, prompts) instead of runs and models.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag: the UI links the run's code
GIT_DIRTY_TAG = "git.dirty"
# MLflow metric names allow letters, digits and `_ - . / : space`.
_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./: ]")
_SQLITE_PREFIX = "sqlite:///"
LOCAL_STORE_SCHEMES = ("sqlite:", "file:")


class TrackingConfigError(SettingsError):
    """A setting of the `tracking:` block in mlflow.yml is missing, unknown or wrong."""


@dataclass(frozen=True)
class MetricSource:
    """Gold table rows turned into MLflow metrics named `<table>.<key values>.<column>`."""

    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    # column -> the name its metric takes (say what a figure is: `roc_auc_leaky_holdout`).
    rename: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackingSettings:
    """The `tracking:` block of mlflow.yml, with paths made absolute against the project."""

    enabled: bool
    uri: str
    experiment: str
    artifact_location: str | None
    artifacts: dict[str, tuple[str, ...]]
    metrics: tuple[MetricSource, ...]
    adapters: str

    @classmethod
    def from_config(cls, conf: dict[str, Any], project_path: Path) -> TrackingSettings:
        block = _tracking_block(conf)
        adapters = str(block.get("adapters", "log"))
        if adapters not in ADAPTER_MODES:
            raise TrackingConfigError(
                f"{SETTINGS_FILE}: tracking.adapters is {adapters!r}, expected one of {ADAPTER_MODES}"
            )
        artifacts = block.get("artifacts") or {}
        if not isinstance(artifacts, dict):
            raise TrackingConfigError(
                f"{SETTINGS_FILE}: tracking.artifacts maps a folder name to dataset names"
            )
        uri = resolve_tracking_uri(str(block["uri"]), project_path)
        location = block.get("artifact_location")
        # A folder of this machine means something only to a store on this machine: a
        # tracking server keeps the artifacts where it is configured to.
        local_store = uri.startswith(LOCAL_STORE_SCHEMES)
        return cls(
            enabled=bool(block.get("enabled", True)),
            uri=uri,
            experiment=str(block["experiment"]),
            artifact_location=(
                under_project(project_path, str(location)).as_uri()
                if location and local_store
                else None
            ),
            artifacts={str(group): tuple(names) for group, names in artifacts.items()},
            metrics=tuple(_metric_source(i, m) for i, m in enumerate(block.get("metrics") or [])),
            adapters=adapters,
        )


def _tracking_block(conf: dict[str, Any]) -> dict[str, Any]:
    """The `tracking:` block, its keys checked and its required settings present."""
    block = conf.get("tracking")
    if not isinstance(block, dict):
        raise TrackingConfigError(f"{SETTINGS_FILE}: a `tracking:` block is required")
    _check_keys(block, TRACKING_KEYS, "tracking")
    for key in ("uri", "experiment"):
        if not block.get(key):
            raise TrackingConfigError(f"{SETTINGS_FILE}: tracking.{key} is required")
    return block


def _check_keys(block: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
    try:
        check_keys(block, allowed, path)
    except SettingsError as unknown:
        raise TrackingConfigError(f"{SETTINGS_FILE}: {unknown}") from None


def _metric_source(index: int, entry: Any) -> MetricSource:
    path = f"tracking.metrics[{index}]"
    if not isinstance(entry, dict) or not entry.get("table") or not entry.get("values"):
        raise TrackingConfigError(f"{SETTINGS_FILE}: {path} needs `table` and `values`")
    _check_keys(entry, METRIC_KEYS, path)
    rename = entry.get("rename") or {}
    unknown = sorted(set(rename) - set(entry["values"]))
    if not isinstance(rename, dict) or unknown:
        raise TrackingConfigError(
            f"{SETTINGS_FILE}: {path}.rename maps some of its `values` to metric names"
            + (f"; {unknown} are not among them" if unknown else "")
        )
    return MetricSource(
        table=str(entry["table"]),
        keys=tuple(entry.get("keys") or ()),
        values=tuple(entry["values"]),
        rename={str(k): str(v) for k, v in rename.items()},
    )


def under_project(project_path: Path, path: str) -> Path:
    """`path` itself when absolute (after `~`), else resolved against the project root."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (project_path / candidate).resolve()


def resolve_tracking_uri(uri: str, project_path: Path) -> str:
    """`sqlite:///mlflow.db` means the file in the project root, wherever kedro runs from."""
    if uri.startswith(_SQLITE_PREFIX):
        path = uri[len(_SQLITE_PREFIX) :]
        if not Path(path).is_absolute():
            return _SQLITE_PREFIX + str(under_project(project_path, path))
    return uri


def flatten_parameters(params: Any, prefix: str = "") -> dict[str, str]:
    """Nested parameters as `a.b.c` keys; lists of mappings get their index as a key part."""
    if isinstance(params, dict):
        items = params.items()
    elif isinstance(params, list) and any(isinstance(v, dict | list) for v in params):
        items = enumerate(params)
    else:
        return {prefix: json.dumps(params, default=str) if not isinstance(params, str) else params}
    flat: dict[str, str] = {}
    for key, value in items:
        flat.update(flatten_parameters(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def metric_name(*parts: Any) -> str:
    """An MLflow-safe metric name: unsupported characters (`+`, `,`, ...) become `_`."""
    return _METRIC_NAME_UNSAFE.sub("_", ".".join(str(p) for p in parts))


def table_metrics(table: Any, source: MetricSource) -> dict[str, float]:
    """The finite values of `source.values` for every row of a Gold table (a pandas frame)."""
    missing = [c for c in (*source.keys, *source.values) if c not in table.columns]
    if missing:
        raise TrackingConfigError(
            f"{SETTINGS_FILE}: tracking.metrics for table {source.table!r} names columns "
            f"{missing} that the table does not have (it has {list(table.columns)})"
        )
    metrics: dict[str, float] = {}
    for row in table.itertuples(index=False):
        record = row._asdict()
        key = [record[k] for k in source.keys]
        for column in source.values:
            value = record[column]
            if value is None or isinstance(value, str):
                continue
            value = float(value)
            if math.isfinite(value):
                name = source.rename.get(column, column)
                metrics[metric_name(source.table, *key, name)] = value
    return metrics


def environment_record(env: str, spark_conf: dict[str, Any]) -> dict[str, Any]:
    """What ran where: Kedro env, Python, platform, package versions, Spark master."""
    versions = {}
    for package in RECORDED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "kedro_env": env,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "spark_master": spark_conf.get("spark.master"),
    }


def matches_artifact(name: str, patterns: tuple[str, ...], types: dict[str, str]) -> bool:
    """Does dataset `name` match one pattern: a glob of names or `type:<catalog type suffix>`."""
    for pattern in patterns:
        if pattern.startswith("type:"):
            if types.get(name, "").endswith(pattern[len("type:") :]):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def git_tags(project_path: Path) -> dict[str, str]:
    """The commit a run's code came from, and whether the work tree had changes beside it
    (empty outside a git checkout: an installed package or a copied project)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=project_path, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    tags = {GIT_COMMIT_TAG: commit.strip()}
    if status is not None:
        tags[GIT_DIRTY_TAG] = str(bool(status.strip())).lower()
    return tags
