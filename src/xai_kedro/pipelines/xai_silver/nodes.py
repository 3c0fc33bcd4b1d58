"""Thin nodes: the failure gallery of `silver_xai` and the explainer leaderboard's Gold table
(`silver_explainer_scores` -> `explainer_faithfulness`); the Silver nodes themselves (`silver_xai`,
`silver_xai_explainers`, `silver_explainer_scores`) come from `spark.silver_nodes`."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.adapters import read_adapter_files
from xai_kedro.core.data.bronze import centre_crop_arrays, pixels_from_rows
from xai_kedro.core.meta.explainers.faithfulness import explainer_faithfulness, faithfulness_plot
from xai_kedro.core.xai.gallery import failure_figure
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.adapter_udfs import eval_crop_of
from xai_kedro.spark.silver_nodes import leaderboard_config

logger = logging.getLogger(__name__)


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
            explainer=XAIConfig.from_params(engine).explainer,
        )
    logger.info("Failure gallery: %d mistakes over %d adapters", len(wrong), len(figures))
    return figures


def build_explainer_faithfulness(
    silver_explainer_scores: DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, Figure]:
    """Gold `explainer_faithfulness` (means with bootstrap intervals, ranks) and its figure."""
    board = leaderboard_config(params)
    table = explainer_faithfulness(
        silver_explainer_scores.toPandas(),
        n_boot=board.n_boot,
        alpha=board.alpha,
        seed=board.seed,
        reference=board.reference,
        amortise_images=board.amortise_images,
    )
    return table, faithfulness_plot(table)
