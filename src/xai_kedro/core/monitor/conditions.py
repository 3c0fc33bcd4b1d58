"""The conditions the monitor is measured on, and each condition's pool of profiled images.

A condition is clean, a cell of the run's reference grid (`ood.preset` / `ood.corruptions`), an
`ood.shifts` cell (background, ImageNet-C) or a source-side shift (`ood.source_shifts`, the
per-batch regressor's training data on the validation split). Each is applied to the images at
their stored size, as a shifted file would arrive, and each image is profiled once per condition
by the deployed model (`core.monitor.profile`). Shared by the evaluation node (deploy pipeline)
and `benchmarks/monitor_eval.py`; the callers read the tables, this module only computes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from xai_kedro.core.data.bronze import masks_from_rows, pixels_from_rows
from xai_kedro.core.monitor.evaluation import CLEAN, CLEAN_CONDITION, Condition, ConditionPool
from xai_kedro.core.robustness.presets import CorruptionSpec, apply_spec, build_specs, spec_seeds
from xai_kedro.core.robustness.shifts import ShiftSpec, build_shift_specs, shift_images

logger = logging.getLogger(__name__)

SOURCE = "source"  # family of the source-side shifts (never a test condition)
Spec = CorruptionSpec | ShiftSpec | None


def evaluation_conditions(
    ood: Mapping[str, Any], only: Sequence[str] = ()
) -> list[tuple[Condition, Spec]]:
    """(condition, its spec) for clean, the reference grid and every `ood.shifts` cell, keeping
    the families named in ``only`` (all when empty)."""
    out: list[tuple[Condition, Spec]] = [(CLEAN_CONDITION, None)]
    for spec in build_specs(ood.get("preset", "reference"), ood.get("corruptions") or []):
        out.append((Condition("reference", spec.corruption, spec.severity), spec))
    for spec in build_shift_specs(ood.get("shifts") or []):
        out.append((Condition(spec.family, spec.shift, spec.severity), spec))
    return [(c, s) for c, s in out if not only or c.family in (CLEAN, *only)]


def source_conditions(ood: Mapping[str, Any]) -> list[tuple[Condition, Spec]]:
    """Clean, then every `ood.source_shifts` cell (what `silver_source` applies to val)."""
    specs = build_specs(None, ood.get("source_shifts") or [])
    return [(CLEAN_CONDITION, None)] + [
        (Condition(SOURCE, s.corruption, s.severity), s) for s in specs
    ]


def split_rows(bronze: pd.DataFrame, split: str, max_images: int = 0) -> pd.DataFrame:
    """Bronze rows of one split, sorted by image id; at most ``max_images`` (0: all)."""
    rows = bronze[bronze["split"] == split].sort_values("image_id", ignore_index=True)
    return rows.head(max_images) if max_images > 0 else rows


def reference_sample(
    embeddings: pd.DataFrame, splits: pd.DataFrame, size: int, seed: int
) -> np.ndarray:
    """A seeded sample of the Bronze embeddings of non-test images (the drift reference), so
    no test image is in its own reference."""
    emb = embeddings[["image_id", "embedding"]].merge(splits[["image_id", "split"]], on="image_id")
    emb = emb[emb["split"] != "test"].sort_values("image_id", ignore_index=True)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(emb), min(size, len(emb)), replace=False))
    return np.stack([np.asarray(v, np.float64) for v in emb["embedding"].iloc[keep]])


def shifted_pixels(spec: Spec, rows: pd.DataFrame, base_seed: int, world: Any) -> np.ndarray:
    """The images of ``rows`` under one condition, at their stored size, as uint8 [N, H, W, 3]:
    a corruption through its tensor op (seeded as `silver_ood` seeds it), a shift through
    `shift_images`, clean as stored."""
    images = pixels_from_rows(rows)
    ids = rows["image_id"].tolist()
    if spec is None:
        return images
    if isinstance(spec, CorruptionSpec):
        x = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2)
        out = apply_spec(spec, x, spec_seeds(ids, spec, base_seed))
        return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = rows["label"].to_numpy(dtype=np.int64)
    return shift_images(
        spec, images, labels, masks_from_rows(rows), ids, base_seed=base_seed, world=world
    )


def profile_pools(
    deployed: Any,
    rows: pd.DataFrame,
    conditions: Sequence[tuple[Condition, Spec]],
    base_seed: int,
    world: Any,
    chunk: int = 64,
    embed: bool = True,
) -> dict[Condition, ConditionPool]:
    """Every condition's pool: the deployed model's profile and the Bronze-space embeddings of
    each image of ``rows`` under it (profiled once, in chunks of ``chunk`` images; without
    ``embed`` the embeddings are [N, 0], for pools no drift test reads)."""
    from xai_kedro.core.monitor.profile import embed_pixels, frozen_backbone, profile_pixels

    backbone = frozen_backbone(deployed)
    labels = rows["label"].to_numpy()
    pools = {}
    for cond, spec in conditions:
        pixels = shifted_pixels(spec, rows, base_seed, world)
        parts = [pixels[i : i + chunk] for i in range(0, len(pixels), chunk)]
        profile = pd.concat([profile_pixels(deployed, p) for p in parts], ignore_index=True)
        emb = (
            np.vstack([embed_pixels(deployed, backbone, p) for p in parts]).astype(np.float64)
            if embed
            else np.zeros((len(pixels), 0))
        )
        pools[cond] = ConditionPool(profile, emb)
        accuracy = float(np.mean(profile["pred"].to_numpy() == labels))
        logger.info("monitor evaluation: profiled %s, accuracy %.3f", cond.key, accuracy)
    return pools
