"""The reuse store of ingestion: tables kept beside Bronze with the fingerprint they came from.

Spark cannot overwrite a Parquet table it is reading (it deletes the files first), so a node
cannot return the previous catalog table for Kedro to save again. Each stage writes its table
into this store (``ingestion.reuse.dir``) and returns it read back from there; the record
(fingerprint of inputs and settings) is written last, so an interrupted run is redone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from xai_kedro.core.common.settings import check_keys
from xai_kedro.spark.embedding_udfs import EMBEDDING_SCHEMA, make_embedder

logger = logging.getLogger(__name__)

EMBEDDINGS_TABLE = "bronze_embeddings.parquet"


@dataclass(frozen=True)
class ReuseSettings:
    """``ingestion.reuse``: whether a matching previous table is reused, and the store folder."""

    enabled: bool
    directory: Path

    @classmethod
    def from_params(cls, reuse: Mapping[str, Any] | None) -> ReuseSettings:
        reuse = dict(reuse or {})
        check_keys(reuse, ("enabled", "dir"), "ingestion.reuse")
        enabled = reuse.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"ingestion.reuse.enabled must be true or false, got {enabled!r}")
        if not reuse.get("dir"):
            raise ValueError("ingestion.reuse.dir must name the folder of the reuse store")
        return cls(enabled, Path(str(reuse["dir"])).expanduser().resolve())


class ReuseStore:
    """Tables of one stage kept beside Bronze with the fingerprint they were built from."""

    def __init__(self, directory: Path, stage: str, tables: tuple[str, ...]) -> None:
        self.directory = directory
        self.stage = stage
        self.tables = tables
        self.record_path = directory / f"{stage}.json"

    def path(self, table: str) -> Path:
        return self.directory / table

    def record(self) -> dict[str, Any] | None:
        """The last committed record, or None (never committed, or unreadable)."""
        if not self.record_path.is_file():
            return None
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("Ignoring unreadable reuse record %s: %s", self.record_path, error)
            return None

    def why_not_current(self, fingerprint: str) -> str | None:
        """None when the stored tables were built from exactly ``fingerprint``; else the reason."""
        record = self.record()
        if record is None:
            return "no previous run recorded"
        for table in self.tables:
            if not self.path(table).exists():
                return f"the stored {table} is missing"
        if record.get("fingerprint") != fingerprint:
            return "its inputs changed"
        return None

    def begin(self) -> None:
        """Drop the record before rewriting: a half-written store is never taken as current."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.record_path.unlink(missing_ok=True)

    def commit(self, fingerprint: str, **details: Any) -> None:
        """Write the record atomically, after every table of the stage is complete."""
        temporary = self.record_path.with_suffix(f".tmp-{os.getpid()}")
        temporary.write_text(json.dumps({"fingerprint": fingerprint, **details}, indent=2))
        os.replace(temporary, self.record_path)


def table_digest(frame: DataFrame, columns: list[str]) -> str:
    """Order-independent digest of a table's rows (binary columns by their sha256), in Spark."""
    parts = []
    for name in columns:
        kind = frame.schema[name].dataType
        value = F.sha2(F.col(name), 256) if isinstance(kind, T.BinaryType) else F.col(name)
        parts.append(F.coalesce(value.cast("string"), F.lit("\x00")))
    row_hash = F.sha2(F.concat_ws("\x1f", *parts), 256)
    halves = [
        F.sum(F.conv(F.substring(row_hash, start, 15), 16, 10).cast("decimal(38,0)"))
        for start in (1, 16)
    ]
    count, first, second = frame.agg(F.count(F.lit(1)), *halves).first()
    return f"{count}:{first}:{second}"


def embed_with_reuse(
    bronze: DataFrame,
    backbone_manifest: Mapping[str, Any],
    backbone_key: str,
    batch_size: int,
    device: str,
    device_kind: str,
    reuse: ReuseSettings,
) -> DataFrame:
    """CLS embeddings of every Bronze image; the previous ones when the Bronze pixels, the
    backbone (``backbone_key``: weights and config) and the device (``device`` as configured,
    ``device_kind`` as the driver resolves it: bf16 on CUDA, fp32 on CPU) are unchanged."""
    spark = bronze.sparkSession
    bronze_key = table_digest(bronze, ["image_id", "height", "width", "pixels"])
    fingerprint = json.dumps(
        {
            "bronze": bronze_key,
            "backbone": backbone_key,
            "input_size": int(backbone_manifest["input_size"]),
            "device": [device, device_kind],
        },
        sort_keys=True,
    )
    store = ReuseStore(reuse.directory, "embeddings", (EMBEDDINGS_TABLE,))
    why = store.why_not_current(fingerprint) if reuse.enabled else "reuse is disabled"
    if why is None:
        logger.info("Embeddings are up to date: reusing %s, no image embedded", store.directory)
    else:
        logger.info("Embedding every Bronze image: %s", why)
        store.begin()
        embedder = make_embedder(backbone_manifest, batch_size=batch_size, device=device)
        embeddings = bronze.select("image_id", "height", "width", "pixels").mapInPandas(
            embedder, EMBEDDING_SCHEMA
        )
        embeddings.write.mode("overwrite").parquet(str(store.path(EMBEDDINGS_TABLE)))
        store.commit(fingerprint)
    return spark.read.parquet(str(store.path(EMBEDDINGS_TABLE)))


def remove_store(reuse: ReuseSettings) -> None:
    """Delete the reuse store (the next run decodes and embeds everything)."""
    if reuse.directory.exists():
        shutil.rmtree(reuse.directory)
