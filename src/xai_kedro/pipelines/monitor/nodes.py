"""Thin nodes: list an unlabeled folder, decode it like ingestion (same quarantine), profile it on
Spark with the registered model (loaded once per Python worker), then estimate, test drift and
report on the driver with `core.monitor`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.common.columns import Column
from xai_kedro.core.models.inference import PREDICTION_COLUMNS as PREDICTION_COLUMN_DECLS
from xai_kedro.core.monitor.batch import monitor_batch
from xai_kedro.core.monitor.batch_regressor import BatchRegressor
from xai_kedro.core.monitor.estimates import PREDICTION_COLUMNS, source_sets
from xai_kedro.core.monitor.report import batch_figure, batch_report
from xai_kedro.core.monitor.settings import MonitorSettings
from xai_kedro.core.xai.columns import METRIC_COLUMNS
from xai_kedro.spark.deployed import (
    FOLDER_KEY_COLUMNS,
    batch_pixels,
    decoded_folder,
    list_folder,
    model_udf,
    worker_model,
)
from xai_kedro.spark.schema import struct_of

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = (
    *FOLDER_KEY_COLUMNS,
    Column("class_name", "string", "predicted class name"),
    Column("pred", "int", "predicted class index"),
    Column("confidence", "double", "max-softmax of the prediction", role="confidence"),
    Column("margin", "double", "top1 - top2 softmax", role="confidence"),
    Column("pred_entropy", "double", "softmax entropy (nats)", role="confidence"),
    # the rest of the label-free profile: the per-batch regressor's input
    *(c for c in PREDICTION_COLUMN_DECLS if c.name == "energy"),
    *(c for c in METRIC_COLUMNS if c.role == "xai"),
    Column("failure_risk", "double", "predicted probability the prediction fails under shift"),
    Column("logits", "float_array", "classifier logits, one per class", role="payload"),
    Column("embedding", "float_array", "frozen-backbone CLS embedding", role="payload"),
)
IMAGE_SCHEMA = struct_of(IMAGE_COLUMNS)


def list_monitor_images(monitor: dict[str, Any]) -> pd.DataFrame:
    """Every file under `monitor.source` (an ingestion source kind), listed as ingestion does."""
    return list_folder(MonitorSettings.from_params(monitor))


@functools.lru_cache(maxsize=1)
def _worker_backbone(directory: str, device: str) -> Any:
    """The bundle's pristine backbone (for the embeddings), loaded once per Python worker."""
    from xai_kedro.core.monitor.profile import frozen_backbone

    return frozen_backbone(worker_model(directory, device))


def _profiled_rows(directory: Path, device: str) -> Callable[[Any, pd.DataFrame], pd.DataFrame]:
    def rows(deployed: Any, batch: pd.DataFrame) -> pd.DataFrame:
        from xai_kedro.core.monitor.profile import embed_pixels, profile_pixels

        pixels = batch_pixels(batch)
        backbone = _worker_backbone(str(directory), device)
        profile = profile_pixels(deployed, pixels)
        return profile.assign(
            pred=profile["pred"].astype("int32"),
            logits=[np.asarray(v, np.float32) for v in profile["logits"]],
            embedding=list(embed_pixels(deployed, backbone, pixels)),
        )

    return rows


def profile_batch(
    monitor_listing: pd.DataFrame, deployed_model: dict[str, Any], monitor: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode the listed files with the model's decode settings (unreadable or invalid files go
    to the quarantine, as in ingestion), then profile the rest on Spark."""
    settings = MonitorSettings.from_params(monitor)
    with decoded_folder(monitor_listing, deployed_model, settings) as folder:
        rows = _profiled_rows(folder.directory, settings.device)
        udf = model_udf(folder.directory, settings.device, IMAGE_SCHEMA, rows)
        images = folder.good.mapInPandas(udf, IMAGE_SCHEMA).toPandas()
    images = images.sort_values("image_id", ignore_index=True).assign(model_uri=folder.uri)
    logger.info("Profiled %d images; %d quarantined", len(images), len(folder.quarantine))
    return images, folder.quarantine


def _source_rows(silver_source: DataFrame, adapter_id: str) -> pd.DataFrame:
    needed = ["adapter_id", "corruption", "severity", "label", "logits", *PREDICTION_COLUMNS]
    rows = silver_source.filter(F.col("adapter_id") == adapter_id).select(*needed)
    return rows.toPandas()


def _reference(bronze_embeddings: DataFrame, size: int, seed: int) -> np.ndarray:
    """A seeded sample of Bronze embeddings that does not depend on Spark's row order."""
    key = F.xxhash64(F.col("image_id"), F.lit(seed))
    rows = bronze_embeddings.orderBy(key, "image_id").limit(size).toPandas()
    return np.stack([np.asarray(v, np.float64) for v in rows["embedding"]])


def monitor_report(
    monitor_images: pd.DataFrame,
    monitor_quarantine: pd.DataFrame,
    deployed_model: dict[str, Any],
    silver_source: DataFrame,
    bronze_embeddings: DataFrame,
    accuracy_estimation_summary: pd.DataFrame,
    monitor_batch_regressor: dict[str, Any],
    monitor: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any], str, Figure]:
    """Estimates with measured errors, the drift test, the markdown report and its figure (all
    logged to the run's MLflow run when one is open)."""
    settings = MonitorSettings.from_params(monitor)
    if monitor_images.empty:
        raise SystemExit("monitor: no image of monitor.source could be decoded (see quarantine)")
    adapter = str(deployed_model["adapter_id"])
    source, calibration = source_sets(
        _source_rows(silver_source, adapter), adapter, settings.clean_shift
    )
    reference = _reference(bronze_embeddings, settings.reference_size, settings.seed)
    embeddings = np.stack([np.asarray(v, np.float64) for v in monitor_images["embedding"]])
    estimates, drift = monitor_batch(
        monitor_images, embeddings, source, calibration, reference, settings,
        accuracy_estimation_summary, BatchRegressor.from_dict(monitor_batch_regressor),
    )  # fmt: skip
    info = {
        "source": settings.source["root"],
        "model_uri": monitor_images["model_uri"].iloc[0],
        "adapter_id": adapter,
    }
    report = batch_report(monitor_images, estimates, drift.as_dict(), info, len(monitor_quarantine))
    figure = batch_figure(monitor_images, estimates)
    _log_to_mlflow(estimates, drift.as_dict(), report, figure)
    return estimates, {**drift.as_dict(), **info}, report, figure


def _log_to_mlflow(estimates: pd.DataFrame, drift: dict[str, Any], report: str, fig: Any) -> None:
    """The report, figure and headline numbers in the kedro run's MLflow run (the tracking hook
    opens it); nothing when tracking is off."""
    import mlflow

    if mlflow.active_run() is None:
        logger.info("No active MLflow run: the batch report is written to the catalog only")
        return
    mlflow.log_text(report, "monitor/batch_report.md")
    mlflow.log_figure(fig, "monitor/batch_report.png")
    metrics = {"monitor.mmd2": drift["mmd2"], "monitor.p_value": drift["p_value"]}
    for r in estimates.itertuples(index=False):
        if np.isfinite(r.estimated_accuracy):
            metrics[f"monitor.estimate.{r.method}"] = float(r.estimated_accuracy)
    mlflow.log_metrics(metrics)
