"""Kedro project settings."""

import os

from kedro.config import OmegaConfigLoader

from xai_kedro.hooks import SparkHooks

HOOKS = (SparkHooks(),)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Environments override only the keys they name (deep merge), not whole top-level blocks.
    "merge_strategy": {"parameters": "soft", "spark": "soft"},
    # ${env:NAME,default} in spark.yml: cluster addresses differ per deployment.
    "custom_resolvers": {"env": lambda name, default=None: os.environ.get(name, default)},
    "config_patterns": {
        "spark": ["spark*", "spark*/**"],
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
}
