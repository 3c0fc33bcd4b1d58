"""Starts Spark lazily: only when a Spark dataset is first touched or a node asks for it."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl

from xai_kedro.spark.session import configure_spark, get_spark

logger = logging.getLogger(__name__)


class SparkHooks:
    """Reads `conf/<env>/spark.yml` at start-up; the JVM starts only when something needs it."""

    def __init__(self) -> None:
        self._spark_datasets: set[str] = set()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        try:
            spark_conf = context.config_loader["spark"]
        except KeyError:
            spark_conf = {}
        configure_spark(spark_conf)
        catalog_conf = context.config_loader["catalog"]
        self._spark_datasets = {
            name
            for name, entry in catalog_conf.items()
            if isinstance(entry, dict) and "spark" in str(entry.get("type", "")).lower()
        }

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        if dataset_name in self._spark_datasets:
            get_spark()

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if dataset_name in self._spark_datasets:
            get_spark()
