"""Every `kedro run` becomes one MLflow run, so runs can be compared instead of overwritten.

Recorded per run: the Kedro environment and package versions, every parameter, the zoo
manifest, summary metrics read from the Gold tables, plots and the report as artifacts, and the
trained adapters (copied, or linked by path when they are large). Settings: the `tracking:`
block of `conf/<env>/mlflow.yml`; the default store is an SQLite file in the project root, so
no server is needed (`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows the runs).

mlflow is imported only when a run starts: importing it costs about 2 s of CPU, which
`kedro --help` or `kedro registry list` should not pay.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import platform
import re
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

SETTINGS_FILE = "mlflow.yml"
ADAPTER_MODES = ("log", "link", "none")
# Package versions recorded with every run (read from metadata: nothing is imported).
RECORDED_PACKAGES = (
    "kedro", "kedro-datasets", "pyspark", "torch", "transformers", "peft", "numpy", "pandas",
    "scikit-learn", "xgboost", "mlflow", "xai-kedro",
)  # fmt: skip
# MLflow metric names allow letters, digits and `_ - . / : space`.
_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./: ]")
_SQLITE_PREFIX = "sqlite:///"
LOCAL_STORE_SCHEMES = ("sqlite:", "file:")


class TrackingConfigError(ValueError):
    """A setting of the `tracking:` block in mlflow.yml is missing or wrong."""


@dataclass(frozen=True)
class MetricSource:
    """Gold table rows turned into MLflow metrics named `<table>.<key values>.<column>`."""

    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]


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
        block = conf.get("tracking")
        if not isinstance(block, dict):
            raise TrackingConfigError(f"{SETTINGS_FILE}: a `tracking:` block is required")
        for key in ("uri", "experiment"):
            if not block.get(key):
                raise TrackingConfigError(f"{SETTINGS_FILE}: tracking.{key} is required")
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
                _under(project_path, str(location)).as_uri() if location and local_store else None
            ),
            artifacts={str(group): tuple(names) for group, names in artifacts.items()},
            metrics=tuple(_metric_source(i, m) for i, m in enumerate(block.get("metrics") or [])),
            adapters=adapters,
        )


def _metric_source(index: int, entry: Any) -> MetricSource:
    where = f"{SETTINGS_FILE}: tracking.metrics[{index}]"
    if not isinstance(entry, dict) or not entry.get("table") or not entry.get("values"):
        raise TrackingConfigError(f"{where} needs `table` and `values`")
    return MetricSource(
        table=str(entry["table"]),
        keys=tuple(entry.get("keys") or ()),
        values=tuple(entry["values"]),
    )


def _under(project_path: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (project_path / candidate).resolve()


def resolve_tracking_uri(uri: str, project_path: Path) -> str:
    """`sqlite:///mlflow.db` means the file in the project root, wherever kedro runs from."""
    if uri.startswith(_SQLITE_PREFIX):
        path = uri[len(_SQLITE_PREFIX) :]
        if not Path(path).is_absolute():
            return _SQLITE_PREFIX + str(_under(project_path, path))
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
                metrics[metric_name(source.table, *key, column)] = value
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


def _matches(name: str, patterns: tuple[str, ...], types: dict[str, str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("type:"):
            if types.get(name, "").endswith(pattern[len("type:") :]):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


class MlflowTrackingHook:
    """Opens an MLflow run before the pipeline, fills it after, marks it failed on error."""

    def __init__(self) -> None:
        self._settings: TrackingSettings | None = None
        self._project_path = Path.cwd()
        self._env = ""
        self._spark_conf: dict[str, Any] = {}
        self._filepaths: dict[str, Path] = {}
        self._types: dict[str, str] = {}
        self._client: Any = None
        self._run_id: str | None = None

    @property
    def run_id(self) -> str | None:
        """The MLflow run of the pipeline now running (or the last one)."""
        return self._run_id

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from kedro.config import MissingConfigException

        self._project_path = Path(context.project_path)
        self._env = context.env or ""
        try:
            conf = context.config_loader["mlflow"]
        except MissingConfigException:
            conf = {}
        self._settings = (
            TrackingSettings.from_config(conf, self._project_path)
            if conf.get("tracking", {}).get("enabled", True)
            else None
        )
        try:
            self._spark_conf = dict(context.config_loader["spark"])
        except MissingConfigException:
            self._spark_conf = {}
        catalog = context.config_loader["catalog"]
        self._filepaths = {
            name: _under(self._project_path, str(entry["filepath"]))
            for name, entry in catalog.items()
            if isinstance(entry, dict) and entry.get("filepath")
        }
        self._types = {
            name: str(entry.get("type", ""))
            for name, entry in catalog.items()
            if isinstance(entry, dict)
        }

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if self._settings is None:
            return
        os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # conf/logging.yml decides
        from mlflow.tracking import MlflowClient

        settings = self._settings
        self._client = MlflowClient(tracking_uri=settings.uri)
        experiment = self._client.get_experiment_by_name(settings.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self._client.create_experiment(
                settings.experiment, artifact_location=settings.artifact_location
            )
        )
        pipelines = run_params.get("pipeline_names") or ["__default__"]
        run = self._client.create_run(
            experiment_id,
            run_name=f"{self._env or 'base'}:{'+'.join(pipelines)}",
            tags={
                "kedro.env": self._env,
                "kedro.pipelines": ",".join(pipelines),
                "kedro.session_id": str(run_params.get("session_id", "")),
                "kedro.runtime_params": json.dumps(run_params.get("runtime_params") or {}),
                "spark.master": str(self._spark_conf.get("spark.master", "")),
            },
        )
        self._run_id = run.info.run_id
        parameters = catalog.load("parameters") if "parameters" in catalog else {}
        self._log_params(parameters)
        self._log_json("environment.json", environment_record(self._env, self._spark_conf), "run")
        self._log_json("parameters.json", parameters, "run")
        logger.info(
            "MLflow run %s in %s (experiment %r)", self._run_id, settings.uri, settings.experiment
        )

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if self._client is None or self._run_id is None:
            return
        written = set(pipeline.all_outputs())
        try:
            self._log_metrics(written)
            self._log_artifacts(written)
            self._log_adapters(written)
        except Exception:
            self._client.set_terminated(self._run_id, "FAILED")
            raise
        self._client.set_terminated(self._run_id, "FINISHED")
        logger.info("MLflow run %s recorded", self._run_id)

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        if self._client is None or self._run_id is None:
            return
        self._client.set_tag(self._run_id, "error", f"{type(error).__name__}: {error}"[:5000])
        self._client.set_terminated(self._run_id, "FAILED")

    # ------------------------------------------------------------------ logging helpers
    def _log_params(self, parameters: dict[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        flat = flatten_parameters(parameters)
        # Over-long values are cut here; parameters.json keeps them whole.
        params = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in sorted(flat.items())]
        self._client.log_batch(self._run_id, params=params)

    def _log_json(self, name: str, payload: Any, artifact_path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
            self._client.log_artifact(self._run_id, str(path), artifact_path)

    def _log_metrics(self, written: set[str]) -> None:
        import pandas as pd
        from mlflow.entities import Metric

        metrics: dict[str, float] = {}
        for source in self._settings.metrics:
            if source.table not in written:
                continue
            path = self._filepaths.get(source.table)
            if path is None:
                raise TrackingConfigError(
                    f"{SETTINGS_FILE}: tracking.metrics table {source.table!r} is not a "
                    "catalog dataset with a filepath"
                )
            metrics.update(table_metrics(pd.read_parquet(path), source))
        if metrics:
            timestamp = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
            batch = [Metric(k, v, timestamp, 0) for k, v in sorted(metrics.items())]
            self._client.log_batch(self._run_id, metrics=batch)

    def _log_artifacts(self, written: set[str]) -> None:
        for group, patterns in self._settings.artifacts.items():
            for name in sorted(written):
                if not _matches(name, patterns, self._types):
                    continue
                path = self._filepaths.get(name)
                if path is None or not path.exists():
                    continue
                if path.is_dir():
                    self._client.log_artifacts(self._run_id, str(path), f"{group}/{name}")
                else:
                    self._client.log_artifact(self._run_id, str(path), group)

    def _log_adapters(self, written: set[str]) -> None:
        mode = self._settings.adapters
        manifest = self._filepaths.get("adapter_zoo")
        if mode == "none" or "adapter_zoo" not in written or manifest is None:
            return
        import pandas as pd

        zoo = pd.read_parquet(manifest)
        links = {}
        for row in zoo.itertuples(index=False):
            directory = _under(self._project_path, str(row.path))
            links[row.adapter_id] = directory.as_uri()
            if mode == "log":
                self._client.log_artifacts(
                    self._run_id, str(directory), f"adapters/{row.adapter_id}"
                )
        if mode == "link":
            self._log_json("adapters.json", links, "adapters")
