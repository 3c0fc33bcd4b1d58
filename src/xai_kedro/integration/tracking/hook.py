"""Every `kedro run` becomes one MLflow run, so runs can be compared instead of overwritten.

Recorded per run: the Kedro environment and package versions, every parameter, the zoo
manifest, summary metrics read from the Gold tables, plots and the report as artifacts, and the
trained adapters (copied, or linked by path when they are large). Settings: the `tracking:`
block of `conf/<env>/mlflow.yml` (`tracking.settings`); the default store is an SQLite file in
the project root, so no server is needed (`mlflow ui --backend-store-uri sqlite:///mlflow.db`
shows the runs).

A run that ends in an exception is marked FAILED. Kedro calls `on_pipeline_error` only for an
`Exception`; a node that ends the run with `SystemExit` (the one-line errors) or a Ctrl-C
reaches no hook, so `TrackedSessionStore` (the session's store, which `KedroSession.__exit__`
tells the exception) and, for a session used without `with`, an `atexit` handler end whatever
run is still open as FAILED.

mlflow is imported only when a run starts: importing it costs about 2 s of CPU, which
`kedro --help` or `kedro registry list` should not pay.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
import weakref
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.framework.session.store import BaseSessionStore

from xai_kedro.integration.tracking.settings import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    SETTINGS_FILE,
    TrackingConfigError,
    TrackingSettings,
    environment_record,
    flatten_parameters,
    git_tags,
    matches_artifact,
    table_metrics,
    under_project,
)

logger = logging.getLogger(__name__)

#: The hooks whose MLflow run is open (created, not yet FINISHED or FAILED).
_OPEN_RUNS: weakref.WeakSet[MlflowTrackingHook] = weakref.WeakSet()
_EXIT_REASON = "the process exited before the pipeline finished"
_exit_handler_registered = False


def fail_open_runs(reason: str) -> None:
    """End every MLflow run still open in this process as FAILED, tagged with `reason`."""
    for hook in list(_OPEN_RUNS):
        hook.end_run_failed(reason)


def open_run() -> tuple[str, str] | None:
    """(tracking URI, run id) of the MLflow run this process's `kedro run` has open, or None:
    a node (the deploy pipeline's) logs into it instead of starting a run of its own."""
    for hook in list(_OPEN_RUNS):
        if hook._settings is not None and hook.run_id is not None:
            return hook._settings.uri, hook.run_id
    return None


def _register_exit_handler() -> None:
    global _exit_handler_registered
    if not _exit_handler_registered:
        atexit.register(fail_open_runs, _EXIT_REASON)
        _exit_handler_registered = True


class TrackedSessionStore(BaseSessionStore):
    """Kedro's session store, plus: the exception a session ends with (which `KedroSession`
    stores on exit, `SystemExit` included) ends the open MLflow run as FAILED."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key == "exception" and isinstance(value, dict):
            fail_open_runs(f"{value.get('type')}: {value.get('value')}")


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
            name: under_project(self._project_path, str(entry["filepath"]))
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
        experiment_id = self._experiment_id(settings)
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
                **git_tags(self._project_path),
            },
        )
        self._run_id = run.info.run_id
        _OPEN_RUNS.add(self)
        _register_exit_handler()
        parameters = catalog.load("parameters") if "parameters" in catalog else {}
        self._log_params(parameters)
        self._log_json("environment.json", environment_record(self._env, self._spark_conf), "run")
        self._log_json("parameters.json", parameters, "run")
        logger.info(
            "MLflow run %s in %s (experiment %r)", self._run_id, settings.uri, settings.experiment
        )

    def _experiment_id(self, settings: TrackingSettings) -> str:
        """The configured experiment (created on first use), tagged as classic ML."""
        experiment = self._client.get_experiment_by_name(settings.experiment)
        if experiment is None:
            return self._client.create_experiment(
                settings.experiment,
                artifact_location=settings.artifact_location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            self._client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )
        return experiment.experiment_id

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if self._client is None or self._run_id is None:
            return
        written = set(pipeline.all_outputs())
        try:
            self._log_metrics(written)
            self._log_artifacts(written)
            self._log_adapters(written)
        except Exception as error:
            self.end_run_failed(f"{type(error).__name__}: {error}")
            raise
        _OPEN_RUNS.discard(self)
        self._client.set_terminated(self._run_id, "FINISHED")
        logger.info("MLflow run %s recorded", self._run_id)

    @hook_impl
    def on_pipeline_error(
        self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        self.end_run_failed(f"{type(error).__name__}: {error}")

    def end_run_failed(self, reason: str) -> None:
        """Tag the open run with `reason` and end it FAILED; nothing when no run is open."""
        if self._client is None or self._run_id is None or self not in _OPEN_RUNS:
            return
        _OPEN_RUNS.discard(self)
        self._client.set_tag(self._run_id, "error", reason[:5000])
        self._client.set_terminated(self._run_id, "FAILED")
        logger.info("MLflow run %s marked FAILED (%s)", self._run_id, reason[:200])

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
                if not matches_artifact(name, patterns, self._types):
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
            directory = under_project(self._project_path, str(row.path))
            links[row.adapter_id] = directory.as_uri()
            if mode == "log":
                self._client.log_artifacts(
                    self._run_id, str(directory), f"adapters/{row.adapter_id}"
                )
        if mode == "link":
            self._log_json("adapters.json", links, "adapters")
