"""Thin node: the monitor measured on batches made from the held-out test images, with the model
the deploy node just packaged (`core.monitor.gold`; off unless `monitor.evaluation.enabled`)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.monitor.batch_regressor import BatchRegressor
from xai_kedro.core.monitor.gold import empty_tables, evaluation_data, run_evaluation
from xai_kedro.core.monitor.settings import MonitorEvaluationSettings, MonitorSettings

logger = logging.getLogger(__name__)

PIXEL_SPLITS = ("test", "val")  # the evaluated images and the per-batch regressor's


def _bronze_rows(bronze_images: DataFrame) -> pd.DataFrame:
    """Every image's id and split; pixels, label and mask for the test and val rows only."""
    keep = F.col("split").isin(*PIXEL_SPLITS)
    columns = ["pixels", "mask", "height", "width", "label"]
    return bronze_images.select(
        "image_id", "split", *(F.when(keep, F.col(c)).alias(c) for c in columns)
    ).toPandas()


def evaluate_monitor(
    deployed_model: dict[str, Any],
    bronze_images: DataFrame,
    bronze_embeddings: DataFrame,
    silver_source: DataFrame,
    monitor: dict[str, Any],
    ood: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The Gold tables `monitor_evaluation`, `monitor_estimator_error`,
    `monitor_drift_detection`, `monitor_risk_auroc` and the per-batch regressor the monitor
    run applies (empty tables and an unfitted regressor when the evaluation is off)."""
    settings = MonitorSettings.from_params(monitor)
    evaluation = MonitorEvaluationSettings.from_params(settings.evaluation)
    if not evaluation.enabled:
        logger.info("monitor.evaluation.enabled is false: no monitor evaluation in this run")
        reason = "monitor.evaluation.enabled was false in the run that deployed the model"
        return (*empty_tables().values(), BatchRegressor(reason).as_dict())
    from xai_kedro.core.deploy.scoring import DeployedModel

    deployed = DeployedModel.load(deployed_model["bundle_dir"], settings.device)
    adapter = deployed.bundle.adapter_id
    source = silver_source.filter(F.col("adapter_id") == adapter).toPandas()
    embeddings = bronze_embeddings.select("image_id", "embedding").toPandas()
    data = evaluation_data(_bronze_rows(bronze_images), embeddings, source, ood, evaluation)
    result = run_evaluation(deployed, data, ood, evaluation, settings.estimators)
    return (*result.tables(adapter).values(), result.regressor.as_dict())
