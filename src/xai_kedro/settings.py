"""Kedro project settings.

Kept light: `kedro --help` and `kedro registry list` import this module, so nothing here (or
in the hooks it names) imports pyspark, torch or mlflow at module level."""

import os

from kedro.config import OmegaConfigLoader

from xai_kedro.integration.hooks import (
    NotebookConsoleHook,
    SparkHooks,
    SparkTableStatsHook,
    UserErrorHook,
)
from xai_kedro.integration.tracking.hook import MlflowTrackingHook, TrackedSessionStore

HOOKS = (
    SparkHooks(),
    SparkTableStatsHook(),
    MlflowTrackingHook(),
    UserErrorHook(),
    NotebookConsoleHook(),
)
# Kedro's default store, told the exception a session ends with: a `SystemExit` in a node
# (which no Kedro hook sees) still ends the MLflow run as FAILED.
SESSION_STORE_CLASS = TrackedSessionStore

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments override only the keys they name (deep merge), not whole top-level blocks.
    "merge_strategy": {"parameters": "soft", "spark": "soft", "mlflow": "soft"},
    # ${env:NAME,default} in spark.yml / mlflow.yml: addresses differ per deployment.
    "custom_resolvers": {"env": lambda name, default=None: os.environ.get(name, default)},
    "config_patterns": {
        "spark": ["spark*", "spark*/**"],
        "mlflow": ["mlflow*", "mlflow*/**"],
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
}
