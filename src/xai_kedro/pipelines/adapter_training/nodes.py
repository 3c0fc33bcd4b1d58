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
from xai_kedro.core.adapters.manifest import manifest_tables
from xai_kedro.spark.training_jobs import train_cached
from xai_kedro.spark.zoo import count_classes

logger = logging.getLogger(__name__)


def train_adapter_zoo(
    bronze_images: DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every zoo member (``params``: the `adapter_training` block, its `zoo` and where
    it lives) not already trained on the same data; return manifest + curves."""
    configs = expand_zoo(params["zoo"])
    training_rows = bronze_images.filter(F.col("split").isin("train", "val"))
    rows = (  # ids and hashes only: the pixels stay with the executors
        training_rows.select("image_id", "label", "split", "content_hash")
        .orderBy("image_id")
        .toPandas()
    )
    zoo_dir = Path(params["training"]["zoo_dir"])
    num_classes = count_classes(bronze_images)
    done = train_cached(
        configs,
        training_rows,
        rows,
        zoo_dir,
        num_classes,
        backbone_manifest,
        execution,
        class_names=_class_names(bronze_images, num_classes),
    )
    return manifest_tables(configs, done, zoo_dir)


def _class_names(bronze_images: DataFrame, num_classes: int) -> list[str]:
    """Label index -> Bronze's label_name (the index itself where a class has no name)."""
    pairs = bronze_images.select("label", "label_name").distinct().toPandas()
    named = {
        int(label): str(name)
        for label, name in zip(pairs["label"], pairs["label_name"], strict=True)
        if not pd.isna(name)
    }
    return [named.get(i, str(i)) for i in range(num_classes)]


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
