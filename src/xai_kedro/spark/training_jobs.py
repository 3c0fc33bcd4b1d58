"""Fan the adapter zoo out as Spark tasks: one config per task (one GPU per task on a cluster).

The train and validation rows reach the tasks as Parquet that the executors staged on shared
storage: each task reads them itself, so the driver never holds the pixels.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from pyspark.sql import DataFrame

from xai_kedro.core.adapters import (
    AdapterConfig,
    attach_adapter,
    config_hash,
    is_complete,
    save_adapter,
)
from xai_kedro.core.adapters.storage import META_FILE
from xai_kedro.core.adapters.training import train_adapter
from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.models.backbone import backbone_fingerprint, resolve_manifest_paths
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.spark.progress import track
from xai_kedro.spark.session import get_spark
from xai_kedro.spark.worker import ensure_worker_logging, manifest_backbone, worker_device

logger = logging.getLogger(__name__)


TRAINING_COLUMNS = ["image_id", "label", "split", "height", "width", "pixels"]
STAGING_DIR = "_training_rows.parquet"  # inside zoo_dir, removed after training


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
    cfg = AdapterConfig.from_params(job["config"])
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
        class_names=job.get("class_names"),
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
    backbone = resolve_manifest_paths(backbone)  # on the driver: workers have no project cwd

    def run(jobs: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        jobs = list(jobs)
        if not jobs:
            return
        ensure_worker_logging()
        data = read_training_rows(rows_path)
        for job in jobs:
            yield run_training_job(job, data, backbone, device_preference, threads_per_job)

    return run


# ------------------------------------------------------------------------------ driver side
def training_data_fingerprint(rows: pd.DataFrame, backbone_manifest: dict[str, Any]) -> str:
    """Hash of the backbone weights and of every training/validation row (id, label, split,
    content hash): part of each adapter's cache key, so new or changed rows retrain it."""
    manifest = resolve_manifest_paths(backbone_manifest)
    weights = manifest.get("weights_dir") or manifest["source"]
    digest = hashlib.sha256(backbone_fingerprint(weights).encode())
    for row in rows[["image_id", "label", "split", "content_hash"]].itertuples(index=False):
        digest.update("|".join(map(str, row)).encode())
    return digest.hexdigest()[:16]


def plan_training_jobs(
    configs: Sequence[AdapterConfig], fingerprint: str, zoo_dir: Path, num_classes: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(jobs still to train, metadata of the adapters already trained with the same hash)."""
    jobs, done = [], {}
    for cfg in configs:
        digest = config_hash(cfg, fingerprint)
        directory = zoo_dir / cfg.adapter_id
        if is_complete(directory, digest):
            logger.info("Adapter %s already trained (hash %s): skipped", cfg.adapter_id, digest)
            done[cfg.adapter_id] = json.loads((directory / META_FILE).read_text())
            continue
        jobs.append(
            {
                "config": cfg.to_dict(),
                "config_hash": digest,
                "directory": str(directory.resolve()),
                "num_classes": num_classes,
            }
        )
    return jobs, done


def run_training_jobs(
    jobs: list[dict[str, Any]],
    training_rows: DataFrame,
    splits: set[str],
    zoo_dir: Path,
    backbone_manifest: dict[str, Any],
    execution: dict[str, Any],
) -> None:
    """Train `jobs` as Spark tasks; each saves its adapter (atomically) where the job says.

    The executors stage the train/val rows as Parquet beside the zoo (storage the tasks can
    read, as they write the adapters there) and each task reads them: no pixels on the driver.
    `splits` are the splits present in `training_rows` (checked before any task starts).
    """
    if not {"train", "val"} <= set(splits):
        raise ValueError("the training rows need both 'train' and 'val' rows to train adapters")
    zoo_dir.mkdir(parents=True, exist_ok=True)
    staging = (zoo_dir / STAGING_DIR).resolve()
    spark = get_spark()
    training_rows.select(*TRAINING_COLUMNS).write.mode("overwrite").parquet(staging.as_uri())
    concurrency = execution.get("training_concurrency") or len(jobs)
    slices = max(1, min(int(concurrency), len(jobs)))
    logger.info("Training %d adapters in %d Spark task(s)", len(jobs), slices)

    # Progress on the driver: adapters count as their directories are complete (one task may
    # train several, and accumulators would only report at its end).
    def finished() -> int:
        return sum(is_complete(j["directory"], j["config_hash"], False) for j in jobs)

    try:
        with track("adapter training", len(jobs), "adapters trained", spark=spark, probe=finished):
            results = (
                spark.sparkContext.parallelize(jobs, numSlices=slices)
                .mapPartitions(
                    training_partition(
                        str(staging),
                        backbone_manifest,
                        execution.get("device", "auto"),
                        execution.get("threads_per_training_job"),
                    )
                )
                .collect()
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if staging.exists():
            logger.warning("Could not remove the staged training rows in %s", staging)
    missing = {job["config"]["adapter_id"] for job in jobs} - {r["adapter_id"] for r in results}
    if missing:
        raise RuntimeError(f"Spark training tasks returned no result for {sorted(missing)}")


def train_cached(
    configs: Sequence[AdapterConfig],
    training_rows: DataFrame,
    rows: pd.DataFrame,
    zoo_dir: Path,
    num_classes: int,
    backbone_manifest: dict[str, Any],
    execution: dict[str, Any],
    class_names: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train every config not already trained on the same rows; adapter id -> its metadata.

    `rows` are the ids, labels, splits and content hashes of `training_rows` (no pixels): the
    cache key of each adapter is its `config_hash` over their fingerprint.
    """
    fingerprint = training_data_fingerprint(rows, backbone_manifest)
    jobs, done = plan_training_jobs(configs, fingerprint, zoo_dir, num_classes)
    for job in jobs:  # stored in adapter_meta.json; not part of the cache key
        job["class_names"] = class_names
    if jobs:
        splits = set(rows["split"])
        run_training_jobs(jobs, training_rows, splits, zoo_dir, backbone_manifest, execution)
        for job in jobs:
            meta_file = Path(job["directory"]) / META_FILE
            done[job["config"]["adapter_id"]] = json.loads(meta_file.read_text())
    return done
