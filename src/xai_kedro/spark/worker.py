"""State a Python worker keeps between tasks: the device it owns and the loaded backbone."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from xai_kedro.core.common.device import pick_device
from xai_kedro.core.models.backbone import RELATIVE_PATHS_KEY, load_backbone

logger = logging.getLogger(__name__)


def worker_device(preferred: str | None = "auto") -> torch.device:
    """The GPU Spark assigned to this task (resource scheduling), else `pick_device`."""
    device = pick_device(preferred)
    if device.type != "cuda":
        return device
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        gpus = context.resources().get("gpu") if context is not None else None
        if gpus is not None and gpus.addresses:
            return torch.device(f"cuda:{gpus.addresses[0]}")
    except ImportError:  # running outside Spark
        pass
    return device


def ensure_worker_logging(level: int = logging.INFO) -> None:
    """Python workers do not inherit Kedro's logging config: send our INFO logs to stderr,
    which Spark forwards to the driver console in local mode and to executor logs on a cluster."""
    package = logging.getLogger("xai_kedro")
    if not package.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        package.addHandler(handler)
        package.setLevel(level)


def use_task_cpus() -> None:
    """One torch thread per core Spark gave this task (`spark.task.cpus`): several tasks share
    a machine, and oversubscribed CPU torch slows down by an order of magnitude."""
    try:
        from pyspark import TaskContext
    except ImportError:  # running outside Spark
        return
    context = TaskContext.get()
    if context is not None:
        torch.set_num_threads(max(1, int(context.cpus())))


@functools.lru_cache(maxsize=2)
def cached_backbone(source: str, local_files_only: bool, device: str) -> nn.Module:
    """Load the frozen backbone once per Python worker (workers are reused across tasks)."""
    logger.info("Loading backbone %s on %s", source, device)
    return load_backbone(source, local_files_only=local_files_only).to(device).eval()


def manifest_backbone(manifest: Mapping[str, Any], device: str) -> nn.Module:
    """The backbone a `backbone_manifest` describes, from the directory the driver resolved
    (`weights_dir`), so a worker needs the files, not the driver's Hugging Face environment.

    Its paths must be absolute (`resolve_manifest_paths` on the driver): a worker's working
    directory is not the project's."""
    if manifest.get(RELATIVE_PATHS_KEY):
        raise ValueError(
            "backbone manifest with project-relative paths reached a Spark worker: call "
            "core.models.backbone.resolve_manifest_paths on the driver first"
        )
    location = manifest.get("weights_dir") or manifest["source"]
    return cached_backbone(str(location), bool(manifest["local_files_only"]), device)
