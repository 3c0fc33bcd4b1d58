"""Thin nodes of the ingestion pipeline; the work happens in `core` and `spark`."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from xai_kedro.core.common.device import pick_device
from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.data.sources import SOURCE_COLUMNS, list_source
from xai_kedro.core.data.splits import assign_splits
from xai_kedro.core.data.synthetic import SyntheticConfig, write_synthetic_dataset
from xai_kedro.core.models.backbone import (
    load_backbone,
    resolve_weights_dir,
    save_backbone,
    small_backbone_config,
)
from xai_kedro.core.models.pretrain import pretrain_backbone
from xai_kedro.spark.embedding_udfs import EMBEDDING_SCHEMA, make_embedder
from xai_kedro.spark.ingestion_udfs import DECODED_SCHEMA, make_decoder
from xai_kedro.spark.session import get_spark

logger = logging.getLogger(__name__)

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


def list_images(source: dict[str, Any]) -> pd.DataFrame:
    """Every candidate input file with its label/split/mask; synthetic data is generated first."""
    root = Path(source["root"])
    if source["kind"] == "synthetic":
        write_synthetic_dataset(root, SyntheticConfig.from_dict(source["synthetic"]))
    listing = list_source(source["kind"], root, source_name=source.get("name", source["kind"]))
    logger.info("Listed %d candidate files under %s", len(listing), root)
    return listing


def _strip_scheme(column: str) -> F.Column:
    return F.regexp_replace(F.col(column), r"^file:(//)?", "")


def _read_binary(spark, root: Path) -> DataFrame:
    return (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(str(root.resolve()))
        .select(_strip_scheme("path").alias("path"), "content")
    )


def ingest_images(
    listing: pd.DataFrame, source: dict[str, Any], params: dict[str, Any]
) -> tuple[DataFrame, pd.DataFrame]:
    """Spark reads the bytes; a Pandas UDF decodes them; bad or duplicate inputs are quarantined."""
    spark = get_spark()
    resolve = lambda p: None if p is None or pd.isna(p) else str(Path(p).resolve())  # noqa: E731
    listing = listing.assign(
        path=listing["path"].map(resolve), mask_path=listing["mask_path"].map(resolve)
    )
    flagged = listing[listing["problem"].notna()]
    usable = listing[listing["problem"].isna()]
    quarantined = [
        pd.DataFrame(
            {
                "source_path": flagged["rel_path"],
                "image_id": flagged["image_id"],
                "reason": flagged["problem"],
                "message": "flagged by the source listing: " + flagged["problem"].astype(str),
                "content_hash": None,
            }
        )
    ]
    files = _read_binary(spark, Path(source["root"]))
    masks = files.select(F.col("path").alias("mask_path"), F.col("content").alias("mask_content"))
    keys = usable[list(LISTING_SCHEMA_COLUMNS)].astype(object)
    keys = keys.where(keys.notna(), None).astype({"label": int})
    wanted = spark.createDataFrame(keys, schema=LISTING_SCHEMA)
    # Persisted: the unread check and the decoder both consume the joined bytes (one file scan).
    read = wanted.join(files, on="path", how="left").join(masks, on="mask_path", how="left")
    read = read.persist()
    decoder = make_decoder(
        storage_size=int(params["storage_size"]),
        min_side=int(params["min_side"]),
        max_pixels=int(params["max_pixels"]),
        mask_foreground_values=tuple(params["mask_foreground_values"]),
    )
    unread = read.filter(F.col("content").isNull()).select("path", "rel_path", "image_id")
    unread = unread.toPandas()
    if len(unread):
        # Spark's binaryFile source skips zero-length files; the listing saw them, so say why.
        reasons = unread["path"].map(_why_unread)
        quarantined.append(
            unread.drop(columns="path")
            .rename(columns={"rel_path": "source_path"})
            .assign(
                reason=[r for r, _ in reasons], message=[m for _, m in reasons], content_hash=None
            )
        )
    decoded = read.filter(F.col("content").isNotNull()).mapInPandas(decoder, DECODED_SCHEMA)
    decoded = decoded.persist()
    rejected = decoded.filter(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS).toPandas()
    quarantined.append(rejected)
    read.unpersist()  # `decoded` now holds everything downstream needs

    good = decoded.filter(F.col("reason").isNull())
    first_of_hash = Window.partitionBy("content_hash").orderBy("source_path")
    good = good.withColumn("_dup_rank", F.row_number().over(first_of_hash)).withColumn(
        "_first_path", F.first("source_path").over(first_of_hash)
    )
    duplicates = (
        good.filter(F.col("_dup_rank") > 1)
        .select(
            "source_path",
            "image_id",
            F.lit("duplicate").alias("reason"),
            F.concat(F.lit("byte-identical to "), F.col("_first_path")).alias("message"),
            "content_hash",
        )
        .toPandas()
    )
    if len(duplicates):
        logger.warning("%d byte-identical duplicate files quarantined", len(duplicates))
    quarantined.append(duplicates)
    unique = good.filter(F.col("_dup_rank") == 1).drop("_dup_rank", "_first_path")

    bronze = _with_splits(unique, params["split"])
    quarantine = pd.concat(
        [pd.DataFrame(columns=QUARANTINE_COLUMNS), *[q for q in quarantined if len(q)]],
        ignore_index=True,
    )[QUARANTINE_COLUMNS].astype("string")
    for reason, count in quarantine["reason"].value_counts().items():
        logger.warning("Quarantined %d inputs: %s", count, reason)
    return bronze.select(*BRONZE_COLUMNS), quarantine.sort_values("source_path", ignore_index=True)


def _why_unread(path: str) -> tuple[str, str]:
    file = Path(path)
    if not file.exists():
        return "missing", "listed but gone before Spark read it"
    if file.stat().st_size == 0:
        return "empty", "file has 0 bytes"
    return "unreadable", "Spark's binaryFile reader returned no content"


def _with_splits(images: DataFrame, split_params: dict[str, Any]) -> DataFrame:
    """Stratified, stable split per class, computed by `core.splits` on each class's keys."""
    fractions = {k: float(v) for k, v in split_params["fractions"].items()}
    seed = int(split_params["seed"])

    def split_class(keys: pd.DataFrame) -> pd.DataFrame:
        keys = keys.copy()
        keys["split"] = assign_splits(keys, fractions, seed).values
        return keys

    keys = images.select("image_id", "label", "split")
    assigned = keys.groupBy("label").applyInPandas(
        split_class, schema="image_id string, label int, split string"
    )
    return images.drop("split").join(assigned.select("image_id", "split"), on="image_id")


def prepare_backbone(
    bronze_images: DataFrame, backbone: dict[str, Any], execution: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Load the configured DINOv2, or (base env) pre-train the small one once and reuse it."""
    source = str(backbone["source"])
    pretrain = backbone.get("pretrain") or {}
    if Path(source).exists() or pretrain.get("enabled", False):
        # Spark workers do not share the driver's working directory: pass absolute paths.
        source = str(Path(source).resolve())
    manifest: dict[str, Any] = {
        "source": source,
        "local_files_only": bool(backbone.get("local_files_only", True)),
        "input_size": int(backbone["input_size"]),
        "pretrained_here": bool(pretrain.get("enabled", False)),
    }
    if pretrain.get("enabled", False):
        device = pick_device(execution.get("device"))
        manifest.update(_pretrain_if_needed(bronze_images, Path(source), pretrain, seed, device))
    model = load_backbone(source, local_files_only=manifest["local_files_only"])
    manifest.update(
        weights_dir=str(resolve_weights_dir(source)),
        model_type=model.config.model_type,
        hidden_size=int(model.config.hidden_size),
        patch_size=int(model.config.patch_size),
        num_layers=int(model.config.num_hidden_layers),
        num_register_tokens=int(getattr(model.config, "num_register_tokens", 0) or 0),
        parameters=int(sum(p.numel() for p in model.parameters())),
    )
    logger.info(
        "Backbone ready: %s (%s, %d parameters)",
        source,
        manifest["model_type"],
        manifest["parameters"],
    )
    return manifest


def _pretrain_if_needed(
    bronze_images: DataFrame, directory: Path, pretrain: dict, seed: int, device
) -> dict[str, Any]:
    rows = (
        bronze_images.filter(F.col("split") == "pretrain")
        .select("image_id", "label", "height", "width", "pixels", "content_hash")
        .orderBy("image_id")
        .toPandas()
    )
    if rows.empty:
        raise ValueError(
            "backbone.pretrain.enabled is true but bronze_images has no 'pretrain' split: "
            "use the synthetic source (it generates one) or set backbone.source to a DINOv2 model"
        )
    fingerprint = hashlib.sha256(
        json.dumps({"pretrain": pretrain, "seed": seed}, sort_keys=True).encode()
        + "".join(rows["content_hash"]).encode()
    ).hexdigest()[:16]
    marker = directory / "pretrain_fingerprint.json"
    if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fingerprint:
        logger.info("Reusing pre-trained backbone in %s (fingerprint %s)", directory, fingerprint)
        return json.loads(marker.read_text())
    logger.info("Pre-training the %s backbone on %d images", directory, len(rows))
    model, history = pretrain_backbone(
        pixels_from_rows(rows),
        rows["label"].to_numpy(),
        small_backbone_config(**pretrain["model"]),
        epochs=int(pretrain["epochs"]),
        batch_size=int(pretrain["batch_size"]),
        lr=float(pretrain["lr"]),
        weight_decay=float(pretrain["weight_decay"]),
        seed=seed,
        device=device,
        augment=pretrain.get("augment"),
    )
    save_backbone(model, directory)
    record = {"fingerprint": fingerprint, "pretrain_history": history}
    marker.write_text(json.dumps(record, indent=2))
    return record


def embed_images(
    bronze_images: DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> DataFrame:
    """Frozen-backbone CLS embedding of every Bronze image (iterator Pandas UDF)."""
    embedder = make_embedder(
        backbone_manifest,
        batch_size=int(params["batch_size"]),
        device=execution.get("device", "auto"),
    )
    return bronze_images.select("image_id", "height", "width", "pixels").mapInPandas(
        embedder, EMBEDDING_SCHEMA
    )
