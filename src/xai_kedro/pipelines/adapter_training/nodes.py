"""Thin nodes: collect the training data, fan the zoo out over Spark, write the manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.adapters import config_hash, expand_zoo, is_complete
from xai_kedro.core.models.backbone import backbone_fingerprint
from xai_kedro.spark.session import get_spark
from xai_kedro.spark.training_jobs import TRAINING_COLUMNS, training_partition
from xai_kedro.spark.zoo import count_classes

logger = logging.getLogger(__name__)

STAGING_DIR = "_training_rows.parquet"  # inside zoo_dir, removed after training

MANIFEST_COLUMNS = [
    "adapter_id", "rank", "alpha", "use_dora", "use_rslora", "target_roles", "config_hash",
    "trainable_params", "trainable_pct", "train_loss", "eval_loss", "accuracy", "f1",
    "precision", "recall", "duration_s", "path",
]  # fmt: skip


def _data_fingerprint(rows: pd.DataFrame, backbone_manifest: dict[str, Any]) -> str:
    weights = backbone_manifest.get("weights_dir") or backbone_manifest["source"]
    digest = hashlib.sha256(backbone_fingerprint(weights).encode())
    for row in rows[["image_id", "label", "split", "content_hash"]].itertuples(index=False):
        digest.update("|".join(map(str, row)).encode())
    return digest.hexdigest()[:16]


def train_adapter_zoo(
    bronze_images: DataFrame,
    backbone_manifest: dict[str, Any],
    zoo: dict[str, Any],
    training: dict[str, Any],
    execution: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every zoo member not already trained on the same data; return manifest + curves."""
    configs = expand_zoo(zoo)
    training_rows = bronze_images.filter(F.col("split").isin("train", "val"))
    rows = (  # ids and hashes only: the pixels stay with the executors
        training_rows.select("image_id", "label", "split", "content_hash")
        .orderBy("image_id")
        .toPandas()
    )
    num_classes = count_classes(bronze_images)
    fingerprint = _data_fingerprint(rows, backbone_manifest)
    zoo_dir = Path(training["zoo_dir"])

    jobs, done = [], {}
    for cfg in configs:
        digest = config_hash(cfg, fingerprint)
        directory = zoo_dir / cfg.adapter_id
        if is_complete(directory, digest):
            logger.info("Adapter %s already trained (hash %s): skipped", cfg.adapter_id, digest)
            done[cfg.adapter_id] = json.loads((directory / "adapter_meta.json").read_text())
            continue
        jobs.append(
            {
                "config": cfg.to_dict(),
                "config_hash": digest,
                "directory": str(directory.resolve()),
                "num_classes": num_classes,
            }
        )

    if jobs:
        _run_jobs(jobs, training_rows, rows, zoo_dir, backbone_manifest, execution)
        for job in jobs:
            meta_file = Path(job["directory"]) / "adapter_meta.json"
            done[job["config"]["adapter_id"]] = json.loads(meta_file.read_text())
    manifest, curves = _manifest(configs, done, zoo_dir)
    return manifest, curves


def _run_jobs(
    jobs: list[dict],
    training_rows: DataFrame,
    rows: pd.DataFrame,
    zoo_dir: Path,
    backbone_manifest: dict[str, Any],
    execution: dict[str, Any],
) -> None:
    """Train `jobs` as Spark tasks; each saves its adapter (atomically) where the job says.

    The executors stage the train/val rows as Parquet beside the zoo (storage the tasks can
    read, as they write the adapters there) and each task reads them: no pixels on the driver.
    """
    if not {"train", "val"} <= set(rows["split"]):
        raise ValueError("bronze_images needs both 'train' and 'val' rows to train adapters")
    staging = (zoo_dir / STAGING_DIR).resolve()
    spark = get_spark()
    training_rows.select(*TRAINING_COLUMNS).write.mode("overwrite").parquet(staging.as_uri())
    concurrency = execution.get("training_concurrency") or len(jobs)
    slices = max(1, min(int(concurrency), len(jobs)))
    logger.info("Training %d adapters in %d Spark task(s)", len(jobs), slices)
    try:
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


def _manifest(configs, done: dict[str, dict], zoo_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    records, curves = [], []
    for cfg in configs:
        meta = done[cfg.adapter_id]
        metrics = meta["metrics"]
        records.append(
            {
                "adapter_id": cfg.adapter_id,
                "rank": int(cfg.rank),
                "alpha": float(cfg.alpha),
                "use_dora": bool(cfg.use_dora),
                "use_rslora": bool(cfg.use_rslora),
                "target_roles": ",".join(cfg.target_roles),
                "config_hash": meta["config_hash"],
                "trainable_params": int(metrics["trainable_params"]),
                "trainable_pct": float(metrics["trainable_pct"]),
                **{k: float(metrics[k]) for k in ("train_loss", "eval_loss", "accuracy")},
                "f1": float(metrics["f1"]),
                "precision": float(metrics["precision"]),
                "recall": float(metrics["recall"]),
                "duration_s": float(metrics["duration_s"]),
                "path": str(zoo_dir / cfg.adapter_id),
            }
        )
        for epoch in meta.get("history", []):
            curves.append({"adapter_id": cfg.adapter_id, **epoch})
    return pd.DataFrame(records, columns=MANIFEST_COLUMNS), pd.DataFrame(curves)


def plot_training_curves(curves: pd.DataFrame) -> Figure:
    """Train/eval loss and validation accuracy per epoch, one line per adapter."""
    figure = Figure(figsize=(12, 4), layout="constrained")
    axes = figure.subplots(1, 3)
    for adapter_id, group in curves.groupby("adapter_id", sort=True):
        for ax, column in zip(axes, ("train_loss", "eval_loss", "eval_accuracy"), strict=True):
            if column in group:
                ax.plot(group["epoch"], group[column], marker="o", label=adapter_id)
    for ax, title in zip(axes, ("train loss", "eval loss", "validation accuracy"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[-1].legend(fontsize="small")
    figure.suptitle("Adapter zoo training curves")
    return figure
