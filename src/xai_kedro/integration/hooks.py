"""The Spark hooks. Spark starts lazily: only when a Spark dataset is first touched or a node
asks for it; Spark tables get their kedro-viz stats after a run.

pyspark is imported inside the hooks, not at module level: `settings.py` imports this module
on every kedro command, including `kedro --help` and `kedro registry list`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)

# Where the driver JVM's console goes inside a notebook kernel (beside info.log, same folder).
DRIVER_LOG = "spark-driver.log"
VIZ_STATS_FILE = Path(".viz") / "stats.json"  # kedro_viz.constants.VIZ_METADATA_ARGS["path"]


class SparkHooks:
    """Reads `conf/<env>/spark.yml` at start-up; the JVM starts only when something needs it."""

    def __init__(self) -> None:
        self._spark_datasets: set[str] = set()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from xai_kedro.integration.console import in_notebook_kernel
        from xai_kedro.spark.progress import configure_progress
        from xai_kedro.spark.session import configure_spark

        try:
            spark_conf = context.config_loader["spark"]
        except MissingConfigException:
            spark_conf = {}
        # A notebook kernel shows the driver JVM's console (start-up warnings) as cell output:
        # there it goes to a file beside info.log instead.
        driver_log = Path(DRIVER_LOG).resolve() if in_notebook_kernel() else None
        configure_spark(spark_conf, driver_log=driver_log)
        execution = context.params.get("execution") or {}
        configure_progress(execution.get("progress_interval_s"))
        catalog_conf = context.config_loader["catalog"]
        self._spark_datasets = {
            name
            for name, entry in catalog_conf.items()
            if isinstance(entry, dict) and "spark" in str(entry.get("type", "")).lower()
        }

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        if dataset_name in self._spark_datasets:
            from xai_kedro.spark.session import get_spark

            get_spark()

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if dataset_name in self._spark_datasets:
            from xai_kedro.spark.session import get_spark

            get_spark()


class NotebookConsoleHook:
    """Inside a notebook kernel: plain log lines and reprs (`console.plain_console`)."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from xai_kedro.integration.console import in_notebook_kernel, plain_console

        if in_notebook_kernel():
            plain_console()


class SparkTableStatsHook:
    """Adds the stats of the Spark tables a run wrote to kedro-viz's `.viz/stats.json`.

    kedro-viz's own stats hook counts pandas frames only (a Spark frame would need a full
    count); it writes the file in `after_pipeline_run`, so this one runs after it (trylast)
    and merges."""

    def __init__(self) -> None:
        self._project_path = Path.cwd()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._project_path = Path(context.project_path)

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from xai_kedro.integration.datasets.spark import SparkPreviewDataset

        stats = {}
        for name in sorted(pipeline.all_outputs()):
            dataset = catalog.get(name) if name in catalog else None
            if isinstance(dataset, SparkPreviewDataset):
                table = dataset.table_stats()
                if table:
                    stats[name] = table
        if not stats:
            return
        path = self._project_path / VIZ_STATS_FILE
        current = json.loads(path.read_text()) if path.is_file() else {}
        current.update(stats)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current))


class UserErrorHook:
    """An expected user error (`core.common.errors.UserError`: a setting, a path, a name) in any
    node ends `kedro run` with its one-line message, as `SystemExit` does, instead of a traceback
    wall; the MLflow run is still marked FAILED (`integration.tracking`)."""

    @hook_impl
    def on_node_error(self, error: Exception, node: Any) -> None:
        from xai_kedro.core.common.errors import UserError

        if isinstance(error, UserError):
            logger.error("Node %s stopped: %s", node.name, error)
            raise SystemExit(str(error)) from None
