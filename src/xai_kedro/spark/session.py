"""One lazily created SparkSession per process, configured from `conf/<env>/spark.yml`."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")

_lock = threading.Lock()
_settings: dict[str, Any] = {}

LOCAL_DIR = "spark.local.dir"
_RUN_DIR_PREFIX = "run-"
_PRIVATE = 0o700  # shuffle and spill files hold image rows: readable by this user only


def configure_spark(spark_conf: dict[str, Any], driver_log: Path | None = None) -> None:
    """Remember the settings; nothing starts until `get_spark()` is called. ``driver_log``:
    a file for the driver JVM's console output instead of this process's stdout/stderr."""
    global _settings
    _settings = {"conf": dict(spark_conf or {}), "driver_log": driver_log}


def _launch_gateway_logging_to(path: Path, app_name: str, options: dict[str, str]) -> None:
    """Start the driver JVM with its console in ``path``; the builder then reuses it."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    conf = SparkConf().setAppName(app_name).setAll(list(options.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as log:
        gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
    SparkContext._ensure_initialized(gateway=gateway, conf=conf)
    logger.info("The Spark driver JVM's console output goes to %s", path)


def _builder_options(conf: dict[str, Any]) -> dict[str, str]:
    # `null` in an environment's spark.yml removes a setting it inherits from base (e.g. the
    # loopback driver host), so Spark falls back to its own default.
    options = {
        str(k): str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in conf.items()
        if v is not None
    }
    # The driver JVM logs through this project's log4j2 file: warnings only, no start-up banner.
    java_options = options.get("spark.driver.extraJavaOptions", "")
    if "log4j2.configurationFile" not in java_options:
        options["spark.driver.extraJavaOptions"] = (
            f"{java_options} -Dlog4j2.configurationFile={LOG4J2_CONFIG.as_uri()}".strip()
        )
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
        check_authentication(options)
        # Local workers are forked by the driver from PYSPARK_PYTHON: pin them to this venv.
        os.environ.setdefault("PYSPARK_PYTHON", options["spark.pyspark.python"])
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", options["spark.pyspark.driver.python"])
        if options.get("spark.driver.bindAddress") == "127.0.0.1":
            # Keep local mode on the loopback interface (no public interface lookups).
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        run_dir = _private_local_dir(options)
        # The driver JVM reads its scratch directory from SPARK_LOCAL_DIRS too (which wins over
        # the conf key); passed as the conf key, Spark warns on every start that cluster
        # managers override it. This process's own directory replaces an inherited value.
        if run_dir is not None:
            os.environ["SPARK_LOCAL_DIRS"] = options.pop(LOCAL_DIR)
        elif LOCAL_DIR in options:
            os.environ.setdefault("SPARK_LOCAL_DIRS", options.pop(LOCAL_DIR))
        if _settings.get("driver_log") is not None:
            _launch_gateway_logging_to(Path(_settings["driver_log"]), app_name, options)
        builder = SparkSession.builder.appName(app_name)
        for key, value in options.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        if run_dir is not None:
            atexit.register(_remove_run_dir, run_dir)
        spark.sparkContext.setLogLevel("WARN")
        logger.info("Spark %s started: master=%s", spark.version, spark.sparkContext.master)
        return spark


# Masters for which Spark makes its own authentication secret when none is set.
_OWN_SECRET_MASTERS = ("yarn", "k8s://", "local[")
AUTH_SECRET_ENV = "SPARK_AUTHENTICATE_SECRET"  # conf/cluster/spark.yml reads the secret here


def check_authentication(options: dict[str, str]) -> None:
    """`spark.authenticate` on a standalone master needs the cluster's shared secret: without
    it, end the run in one line naming the variable, not in Spark's Java stack trace."""
    if options.get("spark.authenticate") != "true" or options.get("spark.authenticate.secret"):
        return
    master = options.get("spark.master", "")
    if master == "local" or master.startswith(_OWN_SECRET_MASTERS):
        return
    raise SystemExit(
        f"spark.authenticate is on but spark.authenticate.secret is unset (master {master}): "
        f"export {AUTH_SECRET_ENV} with the secret the master and workers use; "
        "see docs/cluster.md"
    )


def _private_local_dir(options: dict[str, str]) -> Path | None:
    """Point a local master's `spark.local.dir` at a folder of this process (mode 700) under the
    configured one (made absolute: the project's data folder by default), after removing the
    folders that killed runs left behind. Other masters keep what their cluster manager sets."""
    configured = options.get(LOCAL_DIR)
    if (
        not configured
        or "," in configured
        or not options.get("spark.master", "").startswith("local")
    ):
        return None
    base = Path(configured).expanduser().resolve()
    base.mkdir(mode=_PRIVATE, parents=True, exist_ok=True)
    for stale in base.glob(f"{_RUN_DIR_PREFIX}*"):
        pid = stale.name.removeprefix(_RUN_DIR_PREFIX)
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            logger.info("Removing Spark scratch space of a finished run: %s", stale)
            _remove_run_dir(stale, stop_spark=False)
    run_dir = base / f"{_RUN_DIR_PREFIX}{os.getpid()}"
    run_dir.mkdir(mode=_PRIVATE, exist_ok=True)
    options[LOCAL_DIR] = str(run_dir)
    return run_dir


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove_run_dir(run_dir: Path, stop_spark: bool = True) -> None:
    """End of the run: stop Spark (its block managers write here) and delete the scratch space."""
    if stop_spark:
        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
    try:
        shutil.rmtree(run_dir)
    except FileNotFoundError:
        return  # already gone (e.g. removed by Spark's own shutdown)
    except OSError as error:  # at exit: report it, leave the rest of the shutdown alone
        logger.warning("Could not remove the Spark scratch space %s: %s", run_dir, error)
