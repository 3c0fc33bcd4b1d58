"""Thin nodes: Bronze x zoo x corruptions -> `silver_ood`, degradation table and heatmap."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from xai_kedro.core.data.bronze import centre_crop_arrays, pixels_from_rows
from xai_kedro.core.meta.gold import degradation
from xai_kedro.core.meta.plots import degradation_heatmap
from xai_kedro.core.robustness.corruptions import CorruptionSpec, build_specs
from xai_kedro.core.robustness.ood import evaluate_corruptions
from xai_kedro.spark.zoo import run_zoo

logger = logging.getLogger(__name__)

SILVER_OOD_SCHEMA = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("adapter_id", T.StringType(), False),
        T.StructField("corruption", T.StringType(), False),
        T.StructField("severity", T.StringType(), False),
        T.StructField("severity_value", T.DoubleType(), False),
        T.StructField("label", T.IntegerType(), False),
        T.StructField("pred", T.IntegerType(), False),
        T.StructField("confidence", T.DoubleType(), False),
        T.StructField("margin", T.DoubleType(), False),
        T.StructField("pred_entropy", T.DoubleType(), False),
        T.StructField("is_correct", T.BooleanType(), False),
    ]
)


def ood_evaluator(specs: list[CorruptionSpec], input_size: int, batch_size: int, base_seed: int):
    def evaluate(
        model: torch.nn.Module, rows: pd.DataFrame, device: torch.device, crop: int | None
    ) -> pd.DataFrame:
        return evaluate_corruptions(
            model,
            centre_crop_arrays(pixels_from_rows(rows), crop),
            rows["label"].to_numpy(),
            rows["image_id"].tolist(),
            specs,
            input_size=input_size,
            device=device,
            batch_size=batch_size,
            base_seed=base_seed,
        )

    return evaluate


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
    evaluate = ood_evaluator(
        specs,
        int(backbone_manifest["input_size"]),
        int(params["batch_size"]),
        int(params["base_seed"]),
    )
    return run_zoo(
        bronze_images,
        adapter_zoo,
        backbone_manifest,
        evaluate,
        SILVER_OOD_SCHEMA,
        name="silver_ood",
        keys=["image_id", "adapter_id", "corruption", "severity"],
        rows_per_pair=len(specs),
        split=params.get("split", "test"),
        partitions=int(execution["ood_partitions"]),
        device=execution.get("device", "auto"),
    )


def degradation_table(
    silver_xai: DataFrame, silver_ood: DataFrame, adapter_zoo: pd.DataFrame
) -> pd.DataFrame:
    """Accuracy per adapter x corruption x severity and its drop from clean accuracy."""
    clean = silver_xai.select("image_id", "adapter_id", "label", "pred", "is_correct").toPandas()
    return degradation(clean, silver_ood.toPandas(), adapter_zoo)


def plot_degradation(degradation: pd.DataFrame) -> Figure:
    return degradation_heatmap(degradation)
