"""Driver-side glue shared by the stages that run the adapter zoo over Bronze images."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.adapters import read_adapter_files
from xai_kedro.spark.adapter_udfs import make_adapter_udf
from xai_kedro.spark.progress import counted, track
from xai_kedro.spark.session import get_spark
from xai_kedro.spark.stages import BRONZE_INPUT_COLUMNS, SilverStage

logger = logging.getLogger(__name__)


def run_zoo(
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    backbone_manifest: dict[str, Any],
    stage: SilverStage,
    *,
    split: str,
    execution: Mapping[str, Any],
    partitions_key: str,
) -> DataFrame:
    """Every adapter of the zoo over every `split` image, through one iterator-UDF pass.

    `execution` is the `execution` parameters block: `execution[partitions_key]` Spark
    partitions, `device` and `compile`. The result is persisted and checked to hold exactly one
    row per the stage's keys and `stage.rows_per_pair` rows per (image, adapter) before anyone
    writes it."""
    partitions = int(execution[partitions_key])
    device = execution.get("device", "auto")
    compile_settings = execution.get("compile")
    if adapter_zoo.empty:
        raise ValueError("adapter_zoo is empty: run the adapter_training pipeline first")
    spark = get_spark()
    files = {row.adapter_id: read_adapter_files(Path(row.path)) for row in adapter_zoo.itertuples()}
    logger.info(
        "Broadcasting %d adapters (%.1f MB)",
        len(files),
        sum(len(b) for f in files.values() for b in f.values()) / 1e6,
    )
    broadcast = spark.sparkContext.broadcast(files)
    # one pass over Bronze for both the class count and the number of images to evaluate
    stats = bronze_images.agg(
        F.max("label").alias("max_label"),
        F.sum((F.col("split") == split).cast("long")).alias("n_images"),
    ).first()
    num_classes = int(stats["max_label"]) + 1
    images = bronze_images.filter(F.col("split") == split).select(*BRONZE_INPUT_COLUMNS)
    udf = make_adapter_udf(
        stage, broadcast, backbone_manifest, num_classes, device, compile_settings
    )
    n_images = int(stats["n_images"] or 0)
    # Executors count the images of each partition; the driver logs them (the check's count
    # below is the action that runs the UDF).
    with track(stage.name, n_images, "images scored", spark=spark) as scored:
        table = images.repartition(int(partitions), "image_id").mapInPandas(
            counted(udf, scored), stage.schema
        )
        table = table.persist()
        expected = n_images * len(adapter_zoo) * stage.rows_per_pair
        return check_exactly_once(table, list(stage.keys), expected, stage.name)


def check_exactly_once(
    table: DataFrame, keys: list[str], expected_rows: int, name: str
) -> DataFrame:
    """Fail loudly unless `table` has exactly one row per key and `expected_rows` rows in all."""
    stats = table.agg(
        F.count(F.lit(1)).alias("rows"),
        F.countDistinct(*[F.col(k) for k in keys]).alias("distinct"),
    ).first()
    if stats["rows"] != stats["distinct"] or stats["rows"] != expected_rows:
        raise RuntimeError(
            f"{name}: expected exactly one row per {keys} ({expected_rows} rows) but got "
            f"{stats['rows']} rows with {stats['distinct']} distinct keys"
        )
    return table


def count_classes(bronze_images: DataFrame) -> int:
    """Labels are 0..K-1 over the whole Bronze table (every split): K."""
    return int(bronze_images.agg(F.max("label")).first()[0]) + 1
