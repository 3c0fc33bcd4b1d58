"""A folder of new images through the registered model on Spark: listed and decoded as ingestion
does (same quarantine), then a `mapInPandas` whose Python workers load the model once each.

Shared by the `scoring` and `monitor` pipelines (a pipeline imports no other pipeline)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from xai_kedro.core.common.columns import Column
from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.data.sources import list_source, with_file_stats
from xai_kedro.core.deploy.bundle import read_bundle
from xai_kedro.core.deploy.settings import FolderRunSettings
from xai_kedro.spark.ingestion import (
    QUARANTINE_COLUMNS,
    USER_ERRORS,
    decode_listed,
    flagged_quarantine,
)
from xai_kedro.spark.session import get_spark

logger = logging.getLogger(__name__)

# The keys `model_udf` puts beside every row it returns (the first columns of its schema).
FOLDER_KEY_COLUMNS = (
    Column("image_id", "string", "stable key of the file", role="key"),
    Column("source_path", "string", "the file as listed", role="key"),
    Column("folder", "string", "its sub-folder, if any", role="payload", nullable=True),
)
# Where the pyfunc model's workers read the device they run on (core.deploy.model).
SERVE_DEVICE_VARIABLE = "XAI_KEDRO_SERVE_DEVICE"


def list_folder(settings: FolderRunSettings) -> pd.DataFrame:
    """Every file of the block's `source` (an ingestion source kind); a missing or empty root
    ends the run in one line naming the setting (e.g. `scoring.source`)."""
    source, setting = settings.source, f"{settings.PATH}.source"
    try:
        listing = list_source(
            source["kind"], Path(source["root"]), source_name=source.get("name", source["kind"])
        )
    except USER_ERRORS as error:
        raise SystemExit(str(error).replace("ingestion.source", setting)) from None
    logger.info("Listed %d files under %s (%s)", len(listing), source["root"], setting)
    return listing


def local_model(
    model_uri: str | None, deployed_model: Mapping[str, Any], model_dir: str | Path
) -> tuple[str, Path]:
    """The model's URI (`model_uri`, else the one the run registered) and a local copy of it,
    which the workers load."""
    from xai_kedro.core.deploy.model import download_model

    uri = model_uri or str(deployed_model["model_uri"])
    directory = download_model(uri, deployed_model["tracking_uri"], Path(model_dir))
    logger.info("Using %s (local copy %s)", uri, directory)
    return uri, directory


@functools.lru_cache(maxsize=1)
def worker_model(directory: str, device: str) -> Any:
    """The deployed model, loaded once per Python worker through MLflow's pyfunc loader."""
    import mlflow.pyfunc

    os.environ[SERVE_DEVICE_VARIABLE] = device
    return mlflow.pyfunc.load_model(directory).unwrap_python_model().deployed


@dataclass(frozen=True)
class DecodedFolder:
    """A listed folder ready for the model: its URI and the local copy the workers load, the
    usable decoded rows (partitioned by image) and the quarantine."""

    uri: str
    directory: Path
    good: DataFrame
    quarantine: pd.DataFrame


@contextlib.contextmanager
def decoded_folder(
    listing: pd.DataFrame, deployed_model: Mapping[str, Any], settings: FolderRunSettings
) -> Iterator[DecodedFolder]:
    """The block's model (`local_model`) and the listed files decoded with its own decode
    settings (quarantine as in ingestion); the decoded rows are unpersisted on exit."""
    from xai_kedro.core.deploy.model import bundle_in_model

    uri, directory = local_model(settings.model_uri, deployed_model, settings.model_dir)
    decode = read_bundle(bundle_in_model(directory)).decode
    files = with_file_stats(listing, settings.max_file_bytes, f"{settings.PATH}.max_file_bytes")
    decoded = decode_listed(get_spark(), files[files["problem"].isna()], decode)
    try:
        rejected = decoded.filter(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)
        quarantine = pd.concat(
            [pd.DataFrame(columns=QUARANTINE_COLUMNS), flagged_quarantine(files),
             rejected.toPandas()],
            ignore_index=True,
        ).astype("string")  # fmt: skip
        good = decoded.filter(F.col("reason").isNull()).repartition(settings.partitions, "image_id")
        yield DecodedFolder(
            uri, directory, good, quarantine.sort_values("source_path", ignore_index=True)
        )
    finally:
        decoded.unpersist()


RowsFn = Callable[[Any, pd.DataFrame], pd.DataFrame]


def model_udf(
    directory: Path, device: str, schema: T.StructType, rows: RowsFn
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A `mapInPandas` body: each decoded batch -> `rows(model, batch)` with the batch's keys
    (image id, path, folder) beside it, in `schema`'s column order."""
    columns = schema.fieldNames()

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if not len(batch):
                continue
            out = rows(worker_model(str(directory), device), batch)
            yield out.assign(
                image_id=batch["image_id"].to_numpy(),
                source_path=batch["source_path"].to_numpy(),
                folder=batch["label_name"].to_numpy(),
            )[columns]

    return run


def batch_pixels(batch: pd.DataFrame) -> Any:
    """A decoded batch's images as the uint8 array the model takes."""
    return pixels_from_rows(batch)
