"""The Silver stages as objects: what each computes per (adapter, batch), its schema and keys.

`spark.zoo.run_zoo` runs any stage over Bronze x zoo; the UDF decodes the Bronze rows once per
batch and hands each adapter's evaluation crop of them to the stage, so the stage only calls
`core`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from pyspark.sql import types as T

from xai_kedro.core.common.columns import Column
from xai_kedro.core.data.bronze import centre_crop_arrays, masks_from_rows, pixels_from_rows
from xai_kedro.core.robustness.columns import SILVER_OOD, SILVER_OOD_KEYS
from xai_kedro.core.robustness.ood import OODConditions, ShiftCache, evaluate_corruptions
from xai_kedro.core.xai.columns import (
    SILVER_XAI,
    SILVER_XAI_EXPLAINERS,
    SILVER_XAI_EXPLAINERS_KEYS,
    SILVER_XAI_KEYS,
)
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.explainers import configured_explainers
from xai_kedro.core.xai.leaderboard import (
    EXPLAINER_SCORE_KEYS,
    EXPLAINER_SCORES,
    LeaderboardConfig,
    score_explainers,
)
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.schema import struct_of

# The Bronze columns a stage's UDF reads.
BRONZE_INPUT_COLUMNS = ("image_id", "label", "height", "width", "pixels", "mask")


@dataclass(frozen=True)
class BronzeBatch:
    """Decoded Bronze rows of one Arrow batch, as one adapter sees them (its evaluation crop)."""

    image_ids: list[str]
    labels: np.ndarray
    images: np.ndarray  # [B, H, W, 3] uint8
    masks: list[np.ndarray | None] | None

    @classmethod
    def decode(cls, rows: pd.DataFrame) -> BronzeBatch:
        return cls(
            rows["image_id"].tolist(),
            rows["label"].to_numpy(),
            pixels_from_rows(rows),
            masks_from_rows(rows),
        )

    def cropped(self, crop: int | None) -> BronzeBatch:
        if crop is None:
            return self
        masks = self.masks
        if masks is not None:
            masks = [None if m is None else centre_crop_arrays(m[None], crop)[0] for m in masks]
        return BronzeBatch(
            self.image_ids, self.labels, centre_crop_arrays(self.images, crop), masks
        )


# (merged eval-mode model, the adapter's view of a batch, device) -> rows without adapter_id.
Evaluate = Callable[[torch.nn.Module, BronzeBatch, torch.device], pd.DataFrame]


@dataclass(frozen=True)
class SilverStage:
    """A Silver table computed for every (image, adapter): its columns, keys and per-batch work."""

    name: str
    columns: Sequence[Column]
    keys: Sequence[str]
    rows_per_pair: int
    evaluate: Evaluate

    @property
    def schema(self) -> T.StructType:
        return struct_of(self.columns)


def xai_stage(config: XAIConfig) -> SilverStage:
    """`silver_xai`: one row per (image, adapter) from `core.xai.engine.compute_xai`."""

    def evaluate(model: torch.nn.Module, batch: BronzeBatch, device: torch.device) -> pd.DataFrame:
        profile = compute_xai(model, batch.images, batch.labels, batch.masks, config, device)
        return profile.assign(image_id=batch.image_ids)

    return SilverStage("silver_xai", SILVER_XAI, SILVER_XAI_KEYS, 1, evaluate)


def explainer_profiles_stage(
    config: XAIConfig, explainers: Mapping[str, Mapping[str, Any]]
) -> SilverStage:
    """`silver_xai_explainers`: one row per (image, adapter, explainer) with `silver_xai`'s
    metrics under each further explainer (its settings from parameters), so the meta-learning
    can compare which explainer's profile predicts robustness."""
    if not explainers:
        raise ValueError("explainer_profiles_stage needs at least one explainer")
    configs = {
        name: replace(
            config, explainer=name, explainer_settings=dict(settings or {}), keep_heatmap=False
        )
        for name, settings in explainers.items()
    }

    def evaluate(model: torch.nn.Module, batch: BronzeBatch, device: torch.device) -> pd.DataFrame:
        parts = [
            compute_xai(model, batch.images, batch.labels, batch.masks, cfg, device).assign(
                image_id=batch.image_ids, explainer=name
            )
            for name, cfg in configs.items()
        ]
        return pd.concat(parts, ignore_index=True)  # the UDF keeps the schema's columns

    return SilverStage(
        "silver_xai_explainers",
        SILVER_XAI_EXPLAINERS,
        SILVER_XAI_EXPLAINERS_KEYS,
        len(configs),
        evaluate,
    )


def ood_stage(conditions: OODConditions, *, name: str = "silver_ood") -> SilverStage:
    """`silver_ood`: one row per (image, adapter, shift family, corruption, severity): the
    reference corruption grid, then the image-level shifts (background ones use the Bronze
    masks). With ``include_clean`` (`silver_source`) the unshifted images come first."""
    cache = ShiftCache()

    def evaluate(model: torch.nn.Module, batch: BronzeBatch, device: torch.device) -> pd.DataFrame:
        return evaluate_corruptions(
            model,
            batch.images,
            batch.labels,
            batch.image_ids,
            conditions,
            device=device,
            masks=batch.masks,
            cache=cache,
        )

    return SilverStage(name, SILVER_OOD, SILVER_OOD_KEYS, conditions.rows_per_image, evaluate)


def leaderboard_stage(config: XAIConfig, board: LeaderboardConfig) -> SilverStage:
    """`silver_explainer_scores`: one row per (image, adapter, explainer) from
    `core.xai.leaderboard.score_explainers`, the per-image rows of the explainer leaderboard."""
    explainers = configured_explainers(board.explainers)

    def evaluate(model: torch.nn.Module, batch: BronzeBatch, device: torch.device) -> pd.DataFrame:
        scores = score_explainers(
            model, batch.images, batch.masks, explainers, config, board.sparsities, device
        )
        image_ids = np.asarray(batch.image_ids, dtype=object)[scores["row"].to_numpy()]
        return scores.drop(columns="row").assign(image_id=image_ids)

    return SilverStage(
        "silver_explainer_scores",
        EXPLAINER_SCORES,
        EXPLAINER_SCORE_KEYS,
        len(explainers),
        evaluate,
    )
