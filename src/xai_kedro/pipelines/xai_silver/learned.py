"""The amortised explainers' node (TVE pre-training, DAX's unlabeled images) and the Silver
nodes that pass their artifacts on to the explainers on the Spark workers."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.common.device import pick_device
from xai_kedro.core.common.settings import SettingsError
from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.models.backbone import (
    backbone_fingerprint,
    load_backbone,
    resolve_manifest_paths,
)
from xai_kedro.core.xai.leaderboard import sample_image_ids
from xai_kedro.core.xai.tve import (
    TVESettings,
    prepare_learned_explainers,
    training_images,
    with_artifacts,
)

logger = logging.getLogger(__name__)

LEARNED = ("tve", "dax")


def learned_in_use(params: dict[str, Any]) -> list[str]:
    """The amortised explainers the xai_silver block uses (leaderboard, profiles or engine)."""
    used = set(params.get("explainers") or {}) | set(params.get("profile_explainers") or [])
    used.add((params.get("engine") or {}).get("explainer", "attention"))
    return [name for name in LEARNED if name in used]


def _unlabeled_split(bronze_images: DataFrame, split: str) -> str:
    if split != "auto":
        return split
    has_pretrain = bronze_images.filter(F.col("split") == "pretrain").limit(1).count() > 0
    return "pretrain" if has_pretrain else "train"


def pretrain_tve(
    bronze_images: DataFrame,
    backbone_manifest: dict[str, Any],
    params: dict[str, Any],
    execution: dict[str, Any],
) -> dict[str, Any]:
    """Pre-train TVE once per backbone on unlabeled Bronze images and store them for DAX; reused
    while the backbone, `xai_silver.tve` and the images are unchanged. Nothing to do (an empty
    manifest) when neither explainer is configured."""
    used = learned_in_use(params)
    if not used:
        return {"explainers": []}
    settings = TVESettings.from_params(params.get("tve"))
    split = _unlabeled_split(bronze_images, settings.split)
    rows = bronze_images.filter(F.col("split") == split)
    ids = sample_image_ids(
        [r.image_id for r in rows.select("image_id").collect()], settings.images, settings.seed
    )
    picked = (
        rows.filter(F.col("image_id").isin(ids))
        .select("image_id", "height", "width", "pixels", "content_hash")
        .orderBy("image_id")
        .toPandas()
    )
    if picked.empty:
        raise SettingsError(
            f"xai_silver.tve.split: Bronze has no {split!r} images to pre-train TVE on"
        )
    manifest = resolve_manifest_paths(backbone_manifest)
    size = int(manifest["input_size"])
    weights = manifest.get("weights_dir") or manifest["source"]
    key = hashlib.sha256(
        f"{backbone_fingerprint(weights)}:{size}:".encode()
        + "".join(picked["content_hash"]).encode()
    ).hexdigest()
    backbone = load_backbone(str(weights), local_files_only=bool(manifest["local_files_only"]))
    artifacts = prepare_learned_explainers(
        params["explainer_models"],
        backbone,
        training_images(pixels_from_rows(picked), size),
        key,
        settings,
        pick_device(execution.get("device")),
    )
    logger.info(
        "Amortised explainers %s: TVE pre-trained on %d %s images in %.1f s (held-out R^2 %s)",
        ", ".join(used),
        len(picked),
        split,
        artifacts["pretrain_seconds"],
        artifacts["held_out_r2"],
    )
    return {"explainers": used, "split": split, **artifacts}


def _with_learned(params: dict[str, Any], artifacts: dict[str, Any]) -> dict[str, Any]:
    """The xai_silver block with the artifacts' paths in the explainers' settings."""
    out = dict(params)
    out["explainers"] = with_artifacts(params.get("explainers") or {}, artifacts)
    engine = dict(params.get("engine") or {})
    name = engine.get("explainer")
    if name in LEARNED:
        block = {name: engine.get("explainer_settings") or {}}
        engine["explainer_settings"] = with_artifacts(block, artifacts)[name]
        out["engine"] = engine
    return out


def with_learned_explainers(node: Callable[..., DataFrame]) -> Callable[..., DataFrame]:
    """A Silver node (`spark.silver_nodes`: Bronze, zoo, manifest, parameters, execution) that
    also reads the amortised explainers' manifest (its last input) and hands their paths to the
    explainers it runs."""

    def wrapped(*inputs: Any) -> DataFrame:
        *silver, execution, learned_explainers = inputs  # the Silver node's inputs, then ours
        silver[-1] = _with_learned(silver[-1], learned_explainers)  # its parameters block
        return node(*silver, execution)

    wrapped.__name__ = wrapped.__qualname__ = node.__name__
    wrapped.__doc__ = node.__doc__
    return wrapped
