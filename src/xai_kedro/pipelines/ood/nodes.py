"""Thin nodes: Bronze x zoo x corruptions -> `silver_ood`, degradation table and heatmap."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame

from xai_kedro.core.meta.gold import degradation
from xai_kedro.core.meta.plots import degradation_heatmap
from xai_kedro.core.robustness.presets import build_specs
from xai_kedro.spark.stages import ood_stage
from xai_kedro.spark.zoo import run_zoo

logger = logging.getLogger(__name__)


def compute_silver_ood(
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> DataFrame:
    """One row per (test image, adapter, corruption, severity), checked complete."""
    specs = build_specs(params.get("preset", "reference"), params.get("corruptions"))
    logger.info(
        "OOD conditions: %s", ", ".join(f"{s.corruption}/{s.severity}={s.value}" for s in specs)
    )
    stage = ood_stage(
        specs,
        int(backbone_manifest["input_size"]),
        int(params["batch_size"]),
        int(params["base_seed"]),
    )
    return run_zoo(
        bronze_images,
        adapter_zoo,
        backbone_manifest,
        stage,
        split=params.get("split", "test"),
        execution=execution,
        partitions_key="ood_partitions",
    )


def compute_silver_source(
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> DataFrame:
    """Every adapter on the validation split, clean and under `source_shifts`: the labelled
    source of the label-free accuracy estimators and of their calibration (never test images)."""
    specs = build_specs(None, params.get("source_shifts"))
    split = params.get("source_split", "val")
    logger.info(
        "Source-side shifts on the %s split: %s",
        split,
        ", ".join(f"{s.corruption}/{s.severity}={s.value}" for s in specs) or "none",
    )
    stage = ood_stage(
        specs,
        int(backbone_manifest["input_size"]),
        int(params["batch_size"]),
        int(params["base_seed"]),
        name="silver_source",
        include_clean=True,
    )
    return run_zoo(
        bronze_images,
        adapter_zoo,
        backbone_manifest,
        stage,
        split=split,
        execution=execution,
        partitions_key="ood_partitions",
    )


def degradation_table(
    silver_xai: DataFrame, silver_ood: DataFrame, adapter_zoo: pd.DataFrame
) -> pd.DataFrame:
    """Accuracy per adapter x corruption x severity and its drop from clean accuracy."""
    clean = silver_xai.select("image_id", "adapter_id", "label", "pred", "is_correct").toPandas()
    return degradation(clean, silver_ood.toPandas(), adapter_zoo)


def plot_degradation(degradation: pd.DataFrame) -> Figure:
    return degradation_heatmap(degradation)
