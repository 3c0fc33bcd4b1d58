"""Thin nodes: list a folder, decode it like ingestion (same quarantine), score it on Spark with
the registered model (loaded once per Python worker)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.common.columns import Column
from xai_kedro.core.deploy.settings import ScoringSettings
from xai_kedro.spark.deployed import (
    FOLDER_KEY_COLUMNS,
    batch_pixels,
    decoded_folder,
    list_folder,
    model_udf,
)
from xai_kedro.spark.schema import struct_of

logger = logging.getLogger(__name__)

SCORED_SCHEMA = struct_of(
    (
        *FOLDER_KEY_COLUMNS,
        Column("class_name", "string", "predicted class name"),
        Column("class_id", "int", "predicted class index"),
        Column("confidence", "double", "max-softmax of the prediction", role="confidence"),
        Column("failure_risk", "double", "predicted probability the prediction fails under shift"),
        Column("model_uri", "string", "the registered model that scored it", role="payload"),
    )
)


def list_scoring_images(scoring: dict[str, Any]) -> pd.DataFrame:
    """Every file under `scoring.source` (an ingestion source kind), listed as ingestion does."""
    return list_folder(ScoringSettings.from_params(scoring))


def _scored_rows(model: Any, batch: pd.DataFrame) -> pd.DataFrame:
    scored = model.score_pixels(batch_pixels(batch))
    return scored.assign(
        class_id=scored["class_id"].astype("int32"), model_uri=batch["model_uri"].to_numpy()
    )


def score_images(
    scoring_listing: pd.DataFrame, deployed_model: dict[str, Any], scoring: dict[str, Any]
) -> tuple[DataFrame, pd.DataFrame]:
    """Decode the listed files with the model's own decode settings (a file that cannot be
    read or decoded goes to the quarantine, as in ingestion), then score the rest."""
    settings = ScoringSettings.from_params(scoring)
    with decoded_folder(scoring_listing, deployed_model, settings) as folder:
        udf = model_udf(folder.directory, settings.device, SCORED_SCHEMA, _scored_rows)
        scored = folder.good.withColumn("model_uri", F.lit(folder.uri))
        scored = scored.mapInPandas(udf, SCORED_SCHEMA).persist()
        count = scored.count()
    logger.info("Scored %d images; %d quarantined", count, len(folder.quarantine))
    return scored, folder.quarantine
