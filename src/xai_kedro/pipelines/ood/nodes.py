"""Thin nodes: the degradation table and heatmap of `silver_ood`; the Silver nodes themselves
(`silver_ood`, `silver_source`) come from `spark.silver_nodes`."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame

from xai_kedro.core.meta.gold import degradation
from xai_kedro.core.meta.report.plots import degradation_heatmap


def degradation_table(
    silver_xai: DataFrame, silver_ood: DataFrame, adapter_zoo: pd.DataFrame
) -> pd.DataFrame:
    """Accuracy per adapter x corruption x severity and its drop from clean accuracy."""
    clean = silver_xai.select("image_id", "adapter_id", "label", "pred", "is_correct").toPandas()
    return degradation(clean, silver_ood.toPandas(), adapter_zoo)


def plot_degradation(degradation: pd.DataFrame) -> Figure:
    return degradation_heatmap(degradation)
