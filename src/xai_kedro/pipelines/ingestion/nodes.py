"""Thin nodes of the ingestion pipeline: parameters in, `core` and `spark.ingestion` do the work."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.common.device import pick_device
from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.data.sources import list_source
from xai_kedro.core.data.synthetic import SyntheticConfig, write_synthetic_dataset
from xai_kedro.core.models.backbone import (
    BackboneCheckError,
    backbone_fingerprint,
    check_backbone_setting,
    load_backbone,
    portable_manifest_paths,
    resolve_manifest_paths,
    resolve_weights_dir,
    save_backbone,
)
from xai_kedro.core.models.pretrain import PretrainSettings, pretrain_backbone
from xai_kedro.spark.ingestion import USER_ERRORS, IngestionSettings, ingest
from xai_kedro.spark.reuse import ReuseSettings, embed_with_reuse
from xai_kedro.spark.session import get_spark

logger = logging.getLogger(__name__)


def list_images(ingestion: dict[str, Any], backbone: dict[str, Any] | None = None) -> pd.DataFrame:
    """Every candidate input file with its label/split/mask; synthetic data is generated first.

    All ingestion parameters and the backbone checkpoint are validated here, before any data is
    generated or read. A source whose files are not on disk, or that holds no file, or an
    unusable backbone, ends the run with one line naming the setting (no traceback).
    """
    source = ingestion["source"]
    check_backbone(backbone)
    with _one_line_errors():
        IngestionSettings.from_params(ingestion)
    root = Path(source["root"])
    if source["kind"] == "synthetic":
        write_synthetic_dataset(root, SyntheticConfig.from_params(source["synthetic"]))
    with _one_line_errors():
        listing = list_source(source["kind"], root, source_name=source.get("name", source["kind"]))
    logger.info("Listed %d candidate files under %s", len(listing), root)
    return listing


def ingest_images(
    listing: pd.DataFrame, ingestion: dict[str, Any], backbone: dict[str, Any]
) -> tuple[DataFrame, pd.DataFrame]:
    """Bronze images + quarantine (`spark.ingestion.ingest`), reused when nothing changed.

    No usable image (or an empty required split) ends the run with one line naming the root and
    the quarantine counts."""
    settings = IngestionSettings.from_params(ingestion, backbone)
    with _one_line_errors():
        return ingest(get_spark(), listing, ingestion["source"], settings)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """An expected user error (`spark.ingestion.USER_ERRORS`) ends `kedro run` with its one-line
    message and no traceback, as `SystemExit` does."""
    try:
        yield
    except USER_ERRORS as error:
        raise SystemExit(str(error)) from None


def check_backbone(backbone: dict[str, Any] | None) -> None:
    """A checkpoint that is missing, of no registered family or of a patch size that does not
    divide `backbone.input_size` ends the run in one line before any file is listed (a backbone
    that this run pre-trains is not on disk yet and is checked when it is built)."""
    if not backbone or (backbone.get("pretrain") or {}).get("enabled", False):
        return
    try:
        check_backbone_setting(
            str(backbone["source"]),
            backbone.get("input_size"),
            local_files_only=bool(backbone.get("local_files_only", True)),
        )
    except BackboneCheckError as error:
        raise SystemExit(str(error)) from None


def prepare_backbone(
    bronze_images: DataFrame, backbone: dict[str, Any], execution: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Load the configured backbone, or (base env) pre-train the small one once and reuse it.

    The manifest stores local paths relative to the project root when under it (a copied
    project loads its own backbone); consumers resolve them on the driver
    (`resolve_manifest_paths`)."""
    source = str(backbone["source"])
    pretrain = backbone.get("pretrain") or {}
    if Path(source).exists() or pretrain.get("enabled", False):
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
    return portable_manifest_paths(manifest)


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
    settings = PretrainSettings.from_params(pretrain)
    # Of the resolved settings, so stating a default in conf/ or leaving it out is the same.
    resolved = dataclasses.asdict(settings)
    resolved["augment"] = settings.augment.cache_key_dict()  # keys of later fields only when on
    fingerprint = hashlib.sha256(
        json.dumps({"pretrain": resolved, "seed": seed}, sort_keys=True).encode()
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
        settings,
        seed=seed,
        device=device,
    )
    save_backbone(model, directory)
    record = {"fingerprint": fingerprint, "pretrain_history": history}
    marker.write_text(json.dumps(record, indent=2))
    return record


def embed_images(
    bronze_images: DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    reuse: dict[str, Any],
    execution: dict[str, Any],
) -> DataFrame:
    """Frozen-backbone CLS embedding of every Bronze image, reused while Bronze and the backbone
    are unchanged."""
    device = str(execution.get("device", "auto"))
    manifest = resolve_manifest_paths(backbone_manifest)  # on the driver, before the workers
    return embed_with_reuse(
        bronze_images,
        manifest,
        backbone_key=backbone_fingerprint(manifest["weights_dir"]),
        batch_size=int(params["batch_size"]),
        device=device,
        device_kind=pick_device(execution.get("device")).type,
        reuse=ReuseSettings.from_params(reuse),
    )
