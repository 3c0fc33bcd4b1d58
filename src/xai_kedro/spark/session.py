"""One lazily created SparkSession per process, configured from `conf/<env>/spark.yml`."""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_settings: dict[str, Any] = {}


def configure_spark(spark_conf: dict[str, Any]) -> None:
    """Remember the settings; nothing starts until `get_spark()` is called."""
    global _settings
    _settings = {"conf": dict(spark_conf or {})}


def _builder_options(conf: dict[str, Any]) -> dict[str, str]:
    options = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in conf.items()}
    # Python workers must run the interpreter that runs Kedro (same venv, same torch),
    # unless the cluster config names its own.
    options.setdefault("spark.pyspark.python", sys.executable)
    options.setdefault("spark.pyspark.driver.python", sys.executable)
    return options


def get_spark() -> SparkSession:
    """The active session, created on first use with the configured options."""
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        conf = dict(_settings.get("conf", {}))
        app_name = conf.pop("spark.app.name", "xai-kedro")
        options = _builder_options(conf)
        # Local workers are forked by the driver from PYSPARK_PYTHON: pin them to this venv.
        os.environ.setdefault("PYSPARK_PYTHON", options["spark.pyspark.python"])
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", options["spark.pyspark.driver.python"])
        if options.get("spark.driver.bindAddress") == "127.0.0.1":
            # Keep local mode on the loopback interface (no public interface lookups).
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = SparkSession.builder.appName(app_name)
        for key, value in options.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        logger.info("Spark %s started: master=%s", spark.version, spark.sparkContext.master)
        return spark
