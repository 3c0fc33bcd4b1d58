"""Thin nodes: collect the training data, fan the zoo out over Spark, write the manifest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.adapters import expand_zoo
from xai_kedro.spark.training_jobs import train_cached
from xai_kedro.spark.zoo import count_classes

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "adapter_id", "rank", "alpha", "use_dora", "use_rslora", "target_roles", "config_hash",
    "trainable_params", "trainable_pct", "train_loss", "eval_loss", "accuracy", "f1",
    "precision", "recall", "duration_s", "path",
]  # fmt: skip


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
    zoo_dir = Path(training["zoo_dir"])
    done = train_cached(
        configs,
        training_rows,
        rows,
        zoo_dir,
        count_classes(bronze_images),
        backbone_manifest,
        execution,
    )
    return manifest_tables(configs, done, zoo_dir)


def manifest_tables(
    configs, done: dict[str, dict], zoo_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The zoo manifest (one row per config, in config order) and the per-epoch curves."""
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
