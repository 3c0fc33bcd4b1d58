"""Thin nodes: Bronze x zoo -> `silver_xai` (iterator Pandas UDF) and the further explainers'
profiles (`silver_xai_explainers`), failure gallery, and the explainer leaderboard
(`silver_explainer_scores` -> Gold `explainer_faithfulness`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.adapters import read_adapter_files
from xai_kedro.core.data.bronze import centre_crop_arrays, pixels_from_rows
from xai_kedro.core.meta.faithfulness import explainer_faithfulness, faithfulness_plot
from xai_kedro.core.xai.columns import SILVER_XAI_EXPLAINERS
from xai_kedro.core.xai.gallery import failure_figure
from xai_kedro.core.xai.leaderboard import LeaderboardConfig, sample_image_ids
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.adapter_udfs import eval_crop_of
from xai_kedro.spark.schema import struct_of
from xai_kedro.spark.session import get_spark
from xai_kedro.spark.stages import explainer_profiles_stage, leaderboard_stage, xai_stage
from xai_kedro.spark.zoo import run_zoo

logger = logging.getLogger(__name__)


def _engine_config(params: dict[str, Any], backbone_manifest: dict[str, Any]) -> XAIConfig:
    return XAIConfig.from_dict({"input_size": backbone_manifest["input_size"], **params["engine"]})


def compute_silver_xai(
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> DataFrame:
    """One row per (test image, adapter), checked complete before it is written."""
    config = _engine_config(params, backbone_manifest)
    return run_zoo(
        bronze_images,
        adapter_zoo,
        backbone_manifest,
        xai_stage(config),
        split=params.get("split", "test"),
        execution=execution,
        partitions_key="xai_partitions",
    )


def compute_explainer_profiles(
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> DataFrame:
    """`silver_xai`'s metrics under every `profile_explainers` entry but `engine.explainer`
    (already in `silver_xai`), each with its settings from the `explainers` block: one row
    per (test image, adapter, explainer). Empty when no further explainer is listed."""
    config = _engine_config(params, backbone_manifest)
    settings = params.get("explainers") or {}
    further = {
        name: settings.get(name) or {}
        for name in params.get("profile_explainers") or []
        if name != config.explainer
    }
    if not further:
        logger.info("No explainer beside %s is profiled for the meta-learning", config.explainer)
        return get_spark().createDataFrame([], struct_of(SILVER_XAI_EXPLAINERS))
    logger.info("Profiling %s beside %s", ", ".join(further), config.explainer)
    return run_zoo(
        bronze_images,
        adapter_zoo,
        backbone_manifest,
        explainer_profiles_stage(config, further),
        split=params.get("split", "test"),
        execution=execution,
        partitions_key="xai_partitions",
    )


def failure_gallery(
    silver_xai: DataFrame,
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    params: dict[str, Any],
    engine: dict[str, Any],
) -> dict[str, Figure]:
    """Per adapter: the most confident mistakes, with their heatmap overlay drawn on the
    view the adapter saw (its evaluation crop), named after the explainer that made it."""
    crops = {
        row.adapter_id: eval_crop_of(read_adapter_files(row.path))
        for row in adapter_zoo.itertuples()
    }
    per_adapter = int(params["max_images_per_adapter"])
    wrong = silver_xai.filter(~F.col("is_correct")).select(
        "image_id", "adapter_id", "label", "pred", "confidence", "heatmap"
    )
    wrong = wrong.toPandas()
    if wrong["heatmap"].isna().any():
        raise ValueError("failure_gallery needs heatmaps: set xai_silver.engine.keep_heatmap: true")
    wrong = (
        wrong.sort_values(["adapter_id", "confidence", "image_id"], ascending=[True, False, True])
        .groupby("adapter_id", sort=True)
        .head(per_adapter)
    )
    names = dict(
        bronze_images.select("label", "label_name").distinct().toPandas().itertuples(index=False)
    )
    ids = sorted(set(wrong["image_id"]))
    images = bronze_images.filter(F.col("image_id").isin(ids)).select(
        "image_id", "height", "width", "pixels"
    )
    images = images.toPandas().set_index("image_id")
    figures = {}
    for adapter_id, group in wrong.groupby("adapter_id", sort=True):
        rows = images.loc[group["image_id"]]
        figures[f"{adapter_id}.png"] = failure_figure(
            f"{adapter_id}: most confident mistakes",
            list(centre_crop_arrays(pixels_from_rows(rows), crops[adapter_id])),
            list(group["heatmap"]),
            [
                f"true {names.get(t, t)}\npred {names.get(p, p)} ({c:.2f})"
                for t, p, c in zip(group["label"], group["pred"], group["confidence"], strict=True)
            ],
            columns=int(params["columns"]),
            explainer=XAIConfig.from_dict(engine).explainer,
        )
    logger.info("Failure gallery: %d mistakes over %d adapters", len(wrong), len(figures))
    return figures


def _leaderboard_config(params: dict[str, Any]) -> LeaderboardConfig:
    return LeaderboardConfig.from_dict(
        {**params["leaderboard"], "explainers": params["explainers"]}
    )


def compute_explainer_scores(
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> DataFrame:
    """Every configured explainer on a stable sample of test images under the selected adapters:
    one row per (image, adapter, explainer). The curves follow the predicted class, the class
    the explainers explain, whatever `engine.target` says."""
    config = _engine_config(params, backbone_manifest)
    config = replace(config, target="predicted")
    board = _leaderboard_config(params)
    chosen = board.select_adapters(adapter_zoo["adapter_id"].tolist())
    split = params.get("split", "test")
    ids = [
        r.image_id
        for r in bronze_images.filter(F.col("split") == split).select("image_id").collect()
    ]
    sample = sample_image_ids(ids, board.images_per_adapter, board.seed)
    logger.info(
        "Explainer leaderboard: %d explainers x %d %s images x %d adapters",
        len(board.explainers),
        len(sample),
        split,
        len(chosen),
    )
    return run_zoo(
        bronze_images.filter(F.col("image_id").isin(sample)),
        adapter_zoo[adapter_zoo["adapter_id"].isin(chosen)],
        backbone_manifest,
        leaderboard_stage(config, board),
        split=split,
        execution=execution,
        partitions_key="xai_partitions",
    )


def build_explainer_faithfulness(
    silver_explainer_scores: DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, Figure]:
    """Gold `explainer_faithfulness` (means with bootstrap intervals, ranks) and its figure."""
    board = _leaderboard_config(params)
    table = explainer_faithfulness(
        silver_explainer_scores.toPandas(), n_boot=board.n_boot, alpha=board.alpha, seed=board.seed
    )
    return table, faithfulness_plot(table)
