"""Fan the adapter zoo out as Spark tasks: one config per task (one GPU per task on a cluster).

The train and validation rows reach the tasks as Parquet that the executors staged on shared
storage: each task reads them itself, so the driver never holds the pixels.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from xai_kedro.core.adapters import AdapterConfig, attach_adapter, save_adapter
from xai_kedro.core.adapters.training import train_adapter
from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.spark.worker import ensure_worker_logging, manifest_backbone, worker_device

logger = logging.getLogger(__name__)


TRAINING_COLUMNS = ["image_id", "label", "split", "height", "width", "pixels"]


def read_training_rows(path: str) -> dict[str, np.ndarray]:
    """Staged train/val rows -> arrays, in image_id order (the order does not depend on how
    Spark split the files, so training is reproducible)."""
    rows = pq.read_table(path, columns=TRAINING_COLUMNS).to_pandas()
    rows = rows.sort_values("image_id", kind="stable", ignore_index=True)
    train, val = rows[rows["split"] == "train"], rows[rows["split"] == "val"]
    if train.empty or val.empty:
        raise ValueError(f"{path} needs both 'train' and 'val' rows to train adapters")
    return {
        "train_images": pixels_from_rows(train),
        "train_labels": train["label"].to_numpy(),
        "val_images": pixels_from_rows(val),
        "val_labels": val["label"].to_numpy(),
    }


def run_training_job(
    job: dict[str, Any],
    data: dict[str, np.ndarray],
    backbone: dict[str, Any],
    device_preference: str,
    threads_per_job: int | None,
) -> dict[str, Any]:
    """Train one adapter config and save it atomically; returns its id and validation metrics."""
    if threads_per_job:
        torch.set_num_threads(int(threads_per_job))
    cfg = AdapterConfig.from_dict(job["config"])
    device = worker_device(device_preference)
    torch.manual_seed(cfg.seed)
    frozen = manifest_backbone(backbone, "cpu")
    model = ViTClassifier(copy.deepcopy(frozen), num_classes=int(job["num_classes"]))
    model = attach_adapter(model, cfg).to(device)
    result = train_adapter(
        model,
        cfg,
        data["train_images"],
        data["train_labels"],
        data["val_images"],
        data["val_labels"],
        input_size=int(backbone["input_size"]),
        device=device,
    )
    save_adapter(
        model,
        cfg,
        Path(job["directory"]),
        extra_metadata={
            "config_hash": job["config_hash"],
            "metrics": result.metrics,
            "history": result.history,
        },
    )
    logger.info("Adapter %s trained: %s", cfg.adapter_id, result.metrics)
    return {"adapter_id": cfg.adapter_id, "metrics": result.metrics}


def training_partition(
    rows_path: str,
    backbone: dict[str, Any],
    device_preference: str,
    threads_per_job: int | None,
):
    """`mapPartitions` body: the jobs of one partition run one after another on rows read once."""

    def run(jobs: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        jobs = list(jobs)
        if not jobs:
            return
        ensure_worker_logging()
        data = read_training_rows(rows_path)
        for job in jobs:
            yield run_training_job(job, data, backbone, device_preference, threads_per_job)

    return run
