"""The Silver-stage nodes, made by one factory from a plan per table.

Every Silver node is (Bronze images, adapter zoo, backbone manifest, its parameters block,
execution) -> one table through `spark.zoo.run_zoo`. A plan reads the parameters block and says
what to run (the `SilverStage`, the split, and for the leaderboard which images and adapters);
`silver_node` does the rest the same way for every table. The xai_silver and ood pipelines and
knowledge injection's scoring of its refined adapters use these same nodes, so no pipeline
imports another's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.robustness.ood import OODConditions
from xai_kedro.core.robustness.presets import CorruptionSpec, build_specs
from xai_kedro.core.robustness.shifts import ShiftSpec, build_shift_specs, load_world
from xai_kedro.core.xai.columns import SILVER_XAI_EXPLAINERS
from xai_kedro.core.xai.leaderboard import LeaderboardConfig, sample_image_ids
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.schema import struct_of
from xai_kedro.spark.session import get_spark
from xai_kedro.spark.stages import (
    SilverStage,
    explainer_profiles_stage,
    leaderboard_stage,
    ood_stage,
    xai_stage,
)
from xai_kedro.spark.zoo import run_zoo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SilverInputs:
    """The datasets every Silver node reads."""

    bronze_images: DataFrame
    adapter_zoo: pd.DataFrame
    backbone_manifest: dict[str, Any]


@dataclass(frozen=True)
class SilverRun:
    """What a Silver node runs: `stage` over the `split` images x adapters; `images` and
    `adapters` narrow Bronze and the zoo (None: all of them)."""

    stage: SilverStage
    split: str
    images: DataFrame | None = None
    adapters: pd.DataFrame | None = None


# A plan: the node's inputs and parameters block -> what to run, or the table itself when there
# is nothing to run.
Plan = Callable[[SilverInputs, Mapping[str, Any]], SilverRun | DataFrame]
SilverNode = Callable[
    [DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any], dict[str, Any]], DataFrame
]


def silver_inputs(params: str, adapter_zoo: str = "adapter_zoo") -> list[str]:
    """The Kedro inputs of a `silver_node` (its signature, in order): Bronze, the zoo (another
    one, e.g. knowledge injection's refined adapters), the manifest, `params:<params>` and
    execution; every pipeline that runs a Silver node declares its inputs with this."""
    return [
        "bronze_images",
        adapter_zoo,
        "backbone_manifest",
        f"params:{params}",
        "params:execution",
    ]


def silver_node(plan: Plan, name: str, partitions_key: str) -> SilverNode:
    """A Kedro node function named `name` that runs `plan`'s stage through `run_zoo` with
    `execution[partitions_key]` partitions (its docstring is the plan's)."""

    def node(
        bronze_images: DataFrame,
        adapter_zoo: pd.DataFrame,
        backbone_manifest: dict[str, Any],
        params: dict[str, Any],
        execution: dict[str, Any],
    ) -> DataFrame:
        run = plan(SilverInputs(bronze_images, adapter_zoo, backbone_manifest), params)
        if isinstance(run, DataFrame):
            return run
        return run_zoo(
            bronze_images if run.images is None else run.images,
            adapter_zoo if run.adapters is None else run.adapters,
            backbone_manifest,
            run.stage,
            split=run.split,
            execution=execution,
            partitions_key=partitions_key,
        )

    node.__name__ = node.__qualname__ = name
    node.__doc__ = plan.__doc__
    return node


def engine_config(params: Mapping[str, Any], backbone_manifest: Mapping[str, Any]) -> XAIConfig:
    """`xai_silver.engine` at the backbone's input size."""
    return XAIConfig.from_params(
        {"input_size": backbone_manifest["input_size"], **params["engine"]}
    )


def leaderboard_config(params: Mapping[str, Any]) -> LeaderboardConfig:
    """`xai_silver.leaderboard` with the `xai_silver.explainers` it ranks."""
    return LeaderboardConfig.from_params(
        {**params["leaderboard"], "explainers": params["explainers"]}
    )


def _xai(inputs: SilverInputs, params: Mapping[str, Any]) -> SilverRun:
    """One row per (test image, adapter), checked complete before it is written."""
    config = engine_config(params, inputs.backbone_manifest)
    return SilverRun(xai_stage(config), params.get("split", "test"))


def _explainer_profiles(inputs: SilverInputs, params: Mapping[str, Any]) -> SilverRun | DataFrame:
    """`silver_xai`'s metrics under every `profile_explainers` entry but `engine.explainer`
    (already in `silver_xai`), each with its settings from the `explainers` block: one row
    per (test image, adapter, explainer). Empty when no further explainer is listed."""
    config = engine_config(params, inputs.backbone_manifest)
    settings = params.get("explainers") or {}
    further = {
        name: settings.get(name) or {}
        for name in params.get("profile_explainers") or []
        if name != config.explainer
    }
    if not further:
        logger.info("No explainer beside %s is profiled for the meta-learning", config.explainer)
        return get_spark().createDataFrame([], struct_of(SILVER_XAI_EXPLAINERS))
    logger.info("Profiling %s beside %s", ", ".join(further), config.explainer)
    return SilverRun(explainer_profiles_stage(config, further), params.get("split", "test"))


def _explainer_scores(inputs: SilverInputs, params: Mapping[str, Any]) -> SilverRun:
    """Every configured explainer on a stable sample of test images under the selected adapters:
    one row per (image, adapter, explainer). The curves follow the predicted class, the class
    the explainers explain, whatever `engine.target` says."""
    config = replace(engine_config(params, inputs.backbone_manifest), target="predicted")
    board = leaderboard_config(params)
    zoo = inputs.adapter_zoo
    chosen = board.select_adapters(zoo["adapter_id"].tolist())
    split = params.get("split", "test")
    bronze = inputs.bronze_images
    ids = [r.image_id for r in bronze.filter(F.col("split") == split).select("image_id").collect()]
    sample = sample_image_ids(ids, board.images_per_adapter, board.seed)
    logger.info(
        "Explainer leaderboard: %d explainers x %d %s images x %d adapters",
        len(board.explainers),
        len(sample),
        split,
        len(chosen),
    )
    return SilverRun(
        leaderboard_stage(config, board),
        split,
        images=bronze.filter(F.col("image_id").isin(sample)),
        adapters=zoo[zoo["adapter_id"].isin(chosen)],
    )


def _conditions(specs: list[CorruptionSpec]) -> str:
    return ", ".join(f"{s.corruption}/{s.severity}={s.value}" for s in specs)


def _ood_conditions(
    specs: list[CorruptionSpec], inputs: SilverInputs, params: Mapping[str, Any], **kwargs: Any
) -> OODConditions:
    """The conditions of an OOD table: its grid, shifts and clean rows (``kwargs``) with the
    block's seed and batch size and the backbone's input size."""
    return OODConditions(
        specs,
        input_size=int(inputs.backbone_manifest["input_size"]),
        batch_size=int(params["batch_size"]),
        base_seed=int(params["base_seed"]),
        **kwargs,
    )


def _shift_conditions(shifts: list[ShiftSpec]) -> str:
    return ", ".join(f"{s.family}/{s.shift}/{s.severity}={s.value:g}" for s in shifts)


def _ood(inputs: SilverInputs, params: Mapping[str, Any]) -> SilverRun:
    """One row per (test image, adapter, shift family, corruption, severity), checked complete:
    the reference corruption grid, then the `shifts` (background, ImageNet-C)."""
    specs = build_specs(params.get("preset", "reference"), params.get("corruptions"))
    shifts = build_shift_specs(params.get("shifts"))
    world = load_world(params.get("world"), shifts)
    logger.info("OOD conditions: %s", _conditions(specs))
    if shifts:
        logger.info("OOD shifts: %s", _shift_conditions(shifts))
    conditions = _ood_conditions(specs, inputs, params, shifts=shifts, world=world)
    return SilverRun(ood_stage(conditions), params.get("split", "test"))


def _source(inputs: SilverInputs, params: Mapping[str, Any]) -> SilverRun:
    """Every adapter on the validation split, clean and under `source_shifts`: the labelled
    source of the label-free accuracy estimators and of their calibration (never test images)."""
    specs = build_specs(None, params.get("source_shifts"))
    split = params.get("source_split", "val")
    logger.info("Source-side shifts on the %s split: %s", split, _conditions(specs) or "none")
    conditions = _ood_conditions(specs, inputs, params, include_clean=True)
    return SilverRun(ood_stage(conditions, name="silver_source"), split)


compute_silver_xai = silver_node(_xai, "compute_silver_xai", "xai_partitions")
compute_explainer_profiles = silver_node(
    _explainer_profiles, "compute_explainer_profiles", "xai_partitions"
)
compute_explainer_scores = silver_node(
    _explainer_scores, "compute_explainer_scores", "xai_partitions"
)
compute_silver_ood = silver_node(_ood, "compute_silver_ood", "ood_partitions")
compute_silver_source = silver_node(_source, "compute_silver_source", "ood_partitions")
