"""The Spark steps of ingestion: read the listed files, decode, quarantine, de-duplicate, split,
check, and reuse the previous Bronze and embeddings when nothing they depend on changed.

Reuse: Spark cannot overwrite a Parquet table it is reading (it deletes the files first), so a
node cannot return the previous catalog table for Kedro to save again. Each stage therefore
writes its table into a private store (``ingestion.reuse.dir``, beside the Bronze tables) and
returns it read back from there; Kedro saves that into the catalog as usual, so lineage and
the catalog entries are unchanged. The store's record (fingerprint of the inputs and settings)
is written last: an interrupted run leaves no record, and the next run redoes the work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from xai_kedro.core.common.settings import check_keys
from xai_kedro.core.data.bronze import (
    IngestionError,
    check_bronze,
    describe_changes,
    files_table,
    input_fingerprint,
    quarantine_summary,
)
from xai_kedro.core.data.decoding import DecodeSettings
from xai_kedro.core.data.sources import (
    SOURCE_COLUMNS,
    EmptySourceError,
    SourceNotFoundError,
    validate_source,
    with_file_stats,
)
from xai_kedro.core.data.splits import SPLIT_ORDER, assign_splits, validate_split_params
from xai_kedro.spark.ingestion_udfs import DECODED_SCHEMA, make_decoder
from xai_kedro.spark.reuse import ReuseSettings, ReuseStore

logger = logging.getLogger(__name__)

#: A Spark binary value holds at most 2 GiB - 1 bytes (a Java array): the cap of
#: ``ingestion.max_file_bytes``, whatever the configured value.
SPARK_BINARY_LIMIT = 2**31 - 1
#: The errors a user's data or settings cause, raised on the driver: each message is one line
#: naming the source root (and the counts), so the node ends the run with it, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (SourceNotFoundError, EmptySourceError, IngestionError)
LISTING_SCHEMA = (
    "path string, rel_path string, image_id string, label int, "
    "label_name string, split string, mask_path string"
)
# Every listing column but `problem` (flagged rows are quarantined without being read).
LISTING_SCHEMA_COLUMNS = tuple(c for c in SOURCE_COLUMNS if c != "problem")
QUARANTINE_COLUMNS = ["source_path", "image_id", "reason", "message", "content_hash"]
BRONZE_COLUMNS = [
    "image_id", "label", "label_name", "split", "height", "width",
    "pixels", "mask", "source_path", "content_hash",
]  # fmt: skip
BRONZE_TABLE, QUARANTINE_TABLE = ("bronze_images.parquet", "bronze_quarantine.parquet")
FILES_TABLE = "bronze_files.parquet"  # what the stored Bronze was built from, file by file


# The `ingestion` block: the decode settings, these, and `embedding` (read by its own node).
INGESTION_KEYS = (
    *DecodeSettings.setting_names(), "source", "split", "max_file_bytes", "required_splits",
    "every_class_in", "reuse", "embedding",
)  # fmt: skip


@dataclass(frozen=True)
class IngestionSettings:
    """Every ingestion parameter, validated on the driver before any Spark work."""

    decode: DecodeSettings
    split: dict[str, Any]
    max_file_bytes: int
    required_splits: tuple[str, ...]
    every_class_in: tuple[str, ...]
    reuse: ReuseSettings
    requested_max_file_bytes: int  # as configured; above SPARK_BINARY_LIMIT it is capped

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], backbone: Mapping[str, Any] | None = None
    ) -> IngestionSettings:
        """``params`` is ``ingestion``; ``backbone.pretrain.enabled`` adds the pretrain split to
        the required ones (the base backbone is pre-trained on it)."""
        check_keys(params, INGESTION_KEYS, "ingestion")
        validate_source(params.get("source") or {})
        decode = DecodeSettings.from_params(params)
        split = validate_split_params(params.get("split") or {})
        limit = params.get("max_file_bytes")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise ValueError(f"ingestion.max_file_bytes must be a positive integer, got {limit!r}")
        required = _split_names(params.get("required_splits", []), "ingestion.required_splits")
        if ((backbone or {}).get("pretrain") or {}).get("enabled", False):
            required = tuple(dict.fromkeys(("pretrain", *required)))
        every = _split_names(params.get("every_class_in", []), "ingestion.every_class_in")
        return cls(
            decode=decode,
            split=split,
            max_file_bytes=min(limit, SPARK_BINARY_LIMIT),
            required_splits=required,
            every_class_in=every,
            reuse=ReuseSettings.from_params(params.get("reuse")),
            requested_max_file_bytes=limit,
        )

    def fingerprint_settings(self, source: Mapping[str, Any]) -> dict[str, Any]:
        """The settings a Bronze table depends on (not the checks: those rerun every time)."""
        return {
            "source": {"kind": source["kind"], "name": source.get("name", source["kind"])},
            "decode": self.decode.as_dict(),
            "split": self.split,
            "max_file_bytes": self.max_file_bytes,
        }


def _split_names(value: Any, setting: str) -> tuple[str, ...]:
    names = tuple(value or ())
    unknown = [n for n in names if n not in SPLIT_ORDER]
    if unknown:
        raise ValueError(f"{setting}: unknown split names {unknown}; use {SPLIT_ORDER}")
    return names


# ------------------------------------------------------------------ Spark steps
def flagged_quarantine(listing: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows for what the listing (or its file sizes) flagged: never read."""
    flagged = listing[listing["problem"].notna()]
    default = "flagged by the source listing: " + flagged["problem"].astype(str)
    detail = flagged.get("problem_message", pd.Series(None, index=flagged.index, dtype=object))
    return pd.DataFrame(
        {
            "source_path": flagged["rel_path"],
            "image_id": flagged["image_id"],
            "reason": flagged["problem"],
            "message": detail.where(detail.notna(), default),
            "content_hash": None,
        }
    )


def decode_listed(spark: SparkSession, usable: pd.DataFrame, decode: DecodeSettings) -> DataFrame:
    """Decode the usable rows in a Pandas UDF that reads each file on the executor.

    Returns the decoded rows, persisted, with ``reason`` set where a file was rejected (gone,
    empty, unreadable, or not a valid image).
    """
    keys = usable[list(LISTING_SCHEMA_COLUMNS)].astype(object)
    keys = keys.where(keys.notna(), None).astype({"label": int})
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    wanted = spark.createDataFrame(keys, schema=LISTING_SCHEMA).repartition(partitions, "image_id")
    decoder = make_decoder(
        storage_size=decode.storage_size,
        min_side=decode.min_side,
        max_pixels=decode.max_pixels,
        mask_foreground_values=decode.mask_foreground_values,
    )
    decoded = wanted.mapInPandas(decoder, DECODED_SCHEMA).persist()
    decoded.count()  # decode once; every later step reads the cached rows
    return decoded


def separate_duplicates(good: DataFrame) -> tuple[DataFrame, pd.DataFrame]:
    """Keep one row per content hash; quarantine the other copies.

    Byte-identical files with one label: the first by ``source_path`` stays, the others are
    ``duplicate``. Files with different labels (rule: no copy can be trusted): every copy is
    ``conflicting_label``, the message lists the copies and their labels.
    """
    same_bytes = Window.partitionBy("content_hash")
    first_of_hash = same_bytes.orderBy("source_path")
    tagged = good.withColumn("_labels", F.size(F.collect_set("label").over(same_bytes)))
    conflicting = (
        tagged.filter(F.col("_labels") > 1)
        .withColumn(
            "_copies",
            F.array_join(
                F.array_sort(
                    F.collect_list(
                        F.concat(
                            F.col("source_path"),
                            F.lit(" ("),
                            F.coalesce(F.col("label_name"), F.col("label").cast("string")),
                            F.lit(")"),
                        )
                    ).over(same_bytes)
                ),
                ", ",
            ),
        )
        .select(
            "source_path",
            "image_id",
            F.lit("conflicting_label").alias("reason"),
            F.concat(F.lit("byte-identical files carry different labels: "), "_copies").alias(
                "message"
            ),
            "content_hash",
        )
    )
    agreeing = (
        tagged.filter(F.col("_labels") == 1)
        .drop("_labels")
        .withColumn("_dup_rank", F.row_number().over(first_of_hash))
        .withColumn("_first_path", F.first("source_path").over(first_of_hash))
    )
    duplicates = agreeing.filter(F.col("_dup_rank") > 1).select(
        "source_path",
        "image_id",
        F.lit("duplicate").alias("reason"),
        F.concat(F.lit("byte-identical to "), F.col("_first_path")).alias("message"),
        "content_hash",
    )
    quarantined = conflicting.unionByName(duplicates).toPandas()
    for reason, count in quarantined["reason"].value_counts().items():
        logger.warning("%d byte-identical files quarantined as %s", count, reason)
    unique = agreeing.filter(F.col("_dup_rank") == 1).drop("_dup_rank", "_first_path")
    return unique, quarantined


def assign_bronze_splits(images: DataFrame, fractions: dict[str, float], seed: int) -> DataFrame:
    """Stratified, stable split per class, computed by `core.splits` on each class's keys."""

    def split_class(keys: pd.DataFrame) -> pd.DataFrame:
        keys = keys.copy()
        keys["split"] = assign_splits(keys, fractions, seed).values
        return keys

    keys = images.select("image_id", "label", "split")
    assigned = keys.groupBy("label").applyInPandas(
        split_class, schema="image_id string, label int, split string"
    )
    return images.drop("split").join(assigned.select("image_id", "split"), on="image_id")


def write_bronze(
    spark: SparkSession, files: pd.DataFrame, settings: IngestionSettings, path: Path
) -> pd.DataFrame:
    """Decode the usable rows of ``files`` (at least one), write the Bronze rows as Parquet at
    ``path`` and return the quarantine rows."""
    usable = files[files["problem"].isna()]
    decoded = decode_listed(spark, usable, settings.decode)
    try:
        rejected = decoded.filter(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS)
        rejected = rejected.toPandas()
        unique, duplicates = separate_duplicates(decoded.filter(F.col("reason").isNull()))
        split = settings.split
        bronze = assign_bronze_splits(unique, split["fractions"], split["seed"])
        bronze.select(*BRONZE_COLUMNS).write.mode("overwrite").parquet(str(path))
    finally:
        # A later run with the same plan would otherwise get these cached rows, not the files.
        decoded.unpersist()
    return _quarantine_frame([flagged_quarantine(files), rejected, duplicates])


def _quarantine_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat(
        [pd.DataFrame(columns=QUARANTINE_COLUMNS), *[q for q in parts if len(q)]],
        ignore_index=True,
    )[QUARANTINE_COLUMNS].astype("string")
    return frame.sort_values("source_path", ignore_index=True)


def ingest(
    spark: SparkSession,
    listing: pd.DataFrame,
    source: Mapping[str, Any],
    settings: IngestionSettings,
) -> tuple[DataFrame, pd.DataFrame]:
    """Bronze and quarantine for ``listing``: the previous ones when the listed files (paths,
    sizes, content hashes) and the settings are unchanged, else a full decode; then the checks
    the later stages rely on (they raise :class:`IngestionError` naming the root)."""
    root = str(Path(str(source["root"])).expanduser().resolve())
    _log_cap(settings)
    limit_name = "ingestion.max_file_bytes" + (
        " (Spark's binary limit)" if settings.max_file_bytes == SPARK_BINARY_LIMIT else ""
    )
    files = with_file_stats(_absolute(listing), settings.max_file_bytes, limit_name)
    current = settings.fingerprint_settings(source)
    fingerprint = input_fingerprint(files, current)
    store = ReuseStore(settings.reuse.directory, "bronze", (BRONZE_TABLE, QUARANTINE_TABLE))
    why = store.why_not_current(fingerprint) if settings.reuse.enabled else "reuse is disabled"
    if why is None:
        logger.info(
            "Bronze is up to date (fingerprint %s): reusing %s, no image decoded",
            fingerprint[:16],
            store.directory,
        )
    else:
        why = _explain(why, store, files, current)
        logger.info("Ingesting every listed file under %s: %s", root, why)
        store.begin()
        if files["problem"].isna().sum() == 0:
            flagged = _quarantine_frame([flagged_quarantine(files)])
            flagged.to_parquet(store.path(QUARANTINE_TABLE), index=False)
            _fail_without_usable(files, flagged, root, store.path(QUARANTINE_TABLE))
        quarantine = write_bronze(spark, files, settings, store.path(BRONZE_TABLE))
        quarantine.to_parquet(store.path(QUARANTINE_TABLE), index=False)
        files_table(files).to_parquet(store.path(FILES_TABLE), index=False)
    bronze = spark.read.parquet(str(store.path(BRONZE_TABLE)))
    quarantine = pd.read_parquet(store.path(QUARANTINE_TABLE))
    _check(bronze, files, quarantine, root, settings, store.path(QUARANTINE_TABLE))
    if why is not None:
        store.commit(
            fingerprint,
            source_root=root,
            quarantined=quarantine["reason"].value_counts().to_dict(),
            settings=current,
        )
    for reason, count in quarantine["reason"].value_counts().items():
        logger.warning("Quarantined %d inputs: %s", count, reason)
    return bronze, quarantine


def _log_cap(settings: IngestionSettings) -> None:
    """Say so when the configured ``max_file_bytes`` is over what Spark can hold."""
    if settings.requested_max_file_bytes > settings.max_file_bytes:
        logger.warning(
            "ingestion.max_file_bytes=%d is over Spark's binary limit: capped at %d bytes "
            "(2 GiB - 1); larger files are quarantined as too_large without being read",
            settings.requested_max_file_bytes,
            settings.max_file_bytes,
        )


def _absolute(listing: pd.DataFrame) -> pd.DataFrame:
    # os.path.realpath is Path.resolve without its error on a symlink loop (listed: quarantined).
    resolve = lambda p: None if p is None or pd.isna(p) else os.path.realpath(p)  # noqa: E731
    return listing.assign(
        path=listing["path"].map(resolve), mask_path=listing["mask_path"].map(resolve)
    )


def _explain(why: str, store: ReuseStore, files: pd.DataFrame, settings: Mapping[str, Any]) -> str:
    """Say what changed since the stored Bronze: which settings, or which files."""
    record = store.record() or {}
    previous_files = store.path(FILES_TABLE)
    if why != "its inputs changed" or not previous_files.is_file():
        return why
    before = record.get("settings") or {}
    changed = sorted(k for k in {*before, *settings} if before.get(k) != settings.get(k))
    if changed:
        return "settings changed: " + "; ".join(
            f"{k} {before.get(k)} -> {settings.get(k)}" for k in changed
        )
    return "the listed files changed: " + describe_changes(
        pd.read_parquet(previous_files), files_table(files)
    )


def _fail_without_usable(
    files: pd.DataFrame, quarantine: pd.DataFrame, root: str, written: Path
) -> None:
    if files.empty:
        raise IngestionError(f"ingestion: no usable image under {root}: the source lists no file")
    raise IngestionError(
        f"ingestion: no usable image under {root}: {len(files)} listed files, all quarantined "
        f"({quarantine_summary(quarantine)}); reasons per file in {written}"
    )


def _check(
    bronze: DataFrame,
    files: pd.DataFrame,
    quarantine: pd.DataFrame,
    root: str,
    settings: IngestionSettings,
    written: Path,
) -> None:
    counts = bronze.groupBy("split", "label").count().toPandas()
    listed = files[files["label"] >= 0].drop_duplicates("label")
    class_names = dict(zip(listed["label"].astype(int), listed["label_name"], strict=True))
    try:
        check_bronze(
            counts,
            class_names,
            quarantine,
            root,
            required_splits=settings.required_splits,
            every_class_in=settings.every_class_in,
        )
    except IngestionError as error:
        raise IngestionError(f"{error}; reasons per file in {written}") from error
