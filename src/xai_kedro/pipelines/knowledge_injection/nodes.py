"""Thin nodes: diagnose on the validation split, generate, refine through the zoo's Spark fan-out
and cache, score through the Silver stages, measure; the work is in `core.injection`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.adapters import expand_zoo, read_adapter_files
from xai_kedro.core.adapters.manifest import manifest_tables
from xai_kedro.core.common.registry import load_plugins
from xai_kedro.core.data.bronze import centre_crop_arrays, pixels_from_rows
from xai_kedro.core.data.synthetic import SyntheticConfig
from xai_kedro.core.injection.datasets import (
    CONTROL_GENERATOR,
    COPY_GENERATOR,
    INJECTION_IMAGE_COLUMNS,
    ControlSettings,
    check_injection_images,
    image_rows,
    select_failures,
    training_copies,
    untargeted_control,
)
from xai_kedro.core.injection.diagnosis import (
    TEST_SPLIT,
    DiagnosisConfig,
    failure_profiles,
    find_failures,
    stable_int,
    synthetic_backgrounds,
)
from xai_kedro.core.injection.generator_api import (
    GenerationRequest,
    generate,
    get_generator,
)
from xai_kedro.core.injection.measure import (
    CLEAN_METRICS,
    TABLE_COLUMNS,
    MeasureSettings,
    knowledge_injection_table,
    with_arms,
)
from xai_kedro.core.injection.refine import SEPARATOR, RefineSettings, refined_configs
from xai_kedro.core.injection.report import (
    class_names_of,
    injection_gallery,
    injection_plot,
    injection_report,
)
from xai_kedro.spark.adapter_udfs import eval_crop_of
from xai_kedro.spark.injection_pool import training_pool
from xai_kedro.spark.session import get_spark
from xai_kedro.spark.silver_nodes import SilverInputs, compute_silver_xai
from xai_kedro.spark.training_jobs import TRAINING_COLUMNS, train_cached
from xai_kedro.spark.zoo import count_classes

logger = logging.getLogger(__name__)

TRAINING_SCHEMA = "image_id string, label int, split string, height int, width int, pixels binary"
ROW_KEYS = ["image_id", "label", "split", "content_hash"]
#: (adapter, arm) training jobs run at once: each trains its seeds as parallel Spark tasks, and
#: two jobs keep both cores busy when the seeds are odd in number (Spark queues their tasks).
CONCURRENT_JOBS = 2
T = TypeVar("T")


def silver_inputs_node(fn: Callable[..., T]) -> Callable[..., T]:
    """The Kedro node of `fn(SilverInputs, *rest)`: its first three datasets, in the order of
    `spark.silver_nodes.silver_inputs`, reach `fn` as one `SilverInputs`."""

    def node(bronze_images: DataFrame, adapter_zoo: pd.DataFrame, manifest: Any, *rest: Any) -> T:
        return fn(SilverInputs(bronze_images, adapter_zoo, manifest), *rest)

    node.__name__ = node.__qualname__ = fn.__name__
    node.__doc__ = fn.__doc__
    return node


def _selected_zoo(adapter_zoo: pd.DataFrame, adapter_ids: list[str]) -> pd.DataFrame:
    unknown = sorted(set(adapter_ids) - set(adapter_zoo["adapter_id"]))
    if unknown or not adapter_ids:
        raise ValueError(
            f"knowledge_injection.adapters must name zoo members; unknown {unknown} "
            f"(the zoo has {sorted(adapter_zoo['adapter_id'])})"
        )
    return adapter_zoo.set_index("adapter_id").loc[list(adapter_ids)].reset_index()


def _class_names(rows: DataFrame) -> tuple[str, ...]:
    pairs = rows.select("label", "label_name").distinct().toPandas()
    return class_names_of(pairs["label"], pairs["label_name"])


def diagnose_failures(
    silver: SilverInputs,
    xai_params: dict[str, Any],
    execution: dict[str, Any],
    injection: dict[str, Any],
    source: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """XAI rows of the selected adapters on the diagnosis split -> failures and class profiles.

    The only Bronze rows this node reads are those of the diagnosis split (checked again in
    core): the test split, on which the refined adapters are measured, never enters."""
    config = DiagnosisConfig.from_params(injection.get("diagnosis"))
    selected = _selected_zoo(silver.adapter_zoo, list(injection["adapters"]))
    bronze_images = silver.bronze_images
    diagnosed = bronze_images.filter(F.col("split") == config.split)
    xai = compute_silver_xai(
        diagnosed,
        selected,
        silver.backbone_manifest,
        {**xai_params, "split": config.split},
        execution,
    ).toPandas()
    images = diagnosed.select("image_id", "label", "split", "source_path").toPandas()
    if source.get("kind") == "synthetic":
        backgrounds = synthetic_backgrounds(
            images["source_path"].tolist(),
            SyntheticConfig.from_params(dict(source["synthetic"])),
            config.split,
        )
        images = pd.concat([images, backgrounds], axis=1)
    names = _class_names(bronze_images.filter(F.col("split") != TEST_SPLIT))
    failures = find_failures(xai, images, names, config)
    profiles = failure_profiles(xai, images, failures, names, config)
    for row in profiles[profiles["is_failing"]].itertuples(index=False):
        logger.info("Failure profile %s / %s: %s", row.adapter_id, row.label_name, row.reason)
    return failures, profiles


def generate_training_images(
    injection_failures: pd.DataFrame,
    bronze_images: DataFrame,
    injection: dict[str, Any],
    source: dict[str, Any],
) -> pd.DataFrame:
    """Per selected adapter: its targeted images, an untargeted control in the targeted set's
    class mix and as many unchanged training images (baseline_retrained), all of one size."""
    settings = injection["generator"]
    load_plugins(settings.get("plugins"), "knowledge_injection.generator.plugins")
    name = str(settings["name"])
    get_generator(name)  # an unknown name fails before any work
    params = dict(settings.get("params") or {})
    control = ControlSettings.from_params(injection.get("control"))
    seed = int(injection["seed"])
    if injection_failures.empty:
        raise ValueError(
            "the diagnosis found no failures of the selected adapters: nothing to inject"
        )
    pool = training_pool(bronze_images)
    names = _class_names(bronze_images.filter(F.col("split") == "train"))
    chosen = select_failures(injection_failures, int(settings["max_failures_per_adapter"]))
    frames = []
    for adapter_id, failures in chosen.groupby("adapter_id", sort=True):
        adapter_seed = stable_int(f"{seed}|{adapter_id}")
        request = GenerationRequest(
            failures.reset_index(drop=True),
            pool,
            names,
            int(settings["per_failure"]),
            params,
            source,
            adapter_seed,
        )
        targeted = image_rows(adapter_id, "targeted", name, params, generate(name, request), names)
        control_images, control_params = untargeted_control(
            len(targeted),
            pool,
            control,
            stable_int(f"{seed}|{adapter_id}|control"),
            targeted["label"].value_counts().to_dict(),
        )
        copies, copy_params = training_copies(
            len(targeted), pool, stable_int(f"{seed}|{adapter_id}|baseline_retrained")
        )
        frames += [
            targeted,
            image_rows(
                adapter_id, "control", CONTROL_GENERATOR, control_params, control_images, names
            ),
            image_rows(
                adapter_id, "baseline_retrained", COPY_GENERATOR, copy_params, copies, names
            ),
        ]
        logger.info("%s: %d images per arm (targeted, control, copies)", adapter_id, len(targeted))
    images = pd.concat(frames, ignore_index=True)[INJECTION_IMAGE_COLUMNS]
    check_injection_images(images, set(pool.image_ids), set(injection_failures["image_id"]))
    return images


def refine_adapters(
    silver: SilverInputs,
    zoo: dict[str, Any],
    execution: dict[str, Any],
    knowledge_injection_images: pd.DataFrame,
    injection: dict[str, Any],
) -> pd.DataFrame:
    """Retrain each selected zoo member (same config) on train + each arm's images, once per
    seed, through the zoo's Spark fan-out; a rerun on the same data is a cache hit."""
    settings = RefineSettings.from_params(injection.get("refine"))
    _selected_zoo(silver.adapter_zoo, sorted(set(knowledge_injection_images["adapter_id"])))
    configs = {cfg.adapter_id: cfg for cfg in expand_zoo(zoo)}
    base_rows = silver.bronze_images.filter(F.col("split").isin("train", "val"))
    base_keys = base_rows.select(*ROW_KEYS).toPandas()
    num_classes = count_classes(silver.bronze_images)
    spark = get_spark()

    def train(group: tuple[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
        (adapter_id, arm), extra = group
        cfgs = refined_configs(configs[adapter_id], arm, settings.seeds)
        typed = extra[TRAINING_COLUMNS].astype(
            {"label": "int32", "height": "int32", "width": "int32"}
        )
        extra_rows = spark.createDataFrame(typed, schema=TRAINING_SCHEMA)
        rows = base_rows.select(*TRAINING_COLUMNS).unionByName(extra_rows)
        keys = pd.concat([base_keys, extra[ROW_KEYS]], ignore_index=True).sort_values("image_id")
        zoo_dir = Path(settings.zoo_dir) / f"{adapter_id}{SEPARATOR}{arm}"  # its own staging
        done = train_cached(
            cfgs, rows, keys, zoo_dir, num_classes, silver.backbone_manifest, execution
        )
        manifest, _ = manifest_tables(cfgs, done, zoo_dir)
        return manifest.assign(
            base_adapter_id=adapter_id,
            arm=arm,
            seed=[c.seed for c in cfgs],
            n_added_images=len(extra),
        )

    groups = list(knowledge_injection_images.groupby(["adapter_id", "arm"], sort=True))
    with ThreadPoolExecutor(max_workers=CONCURRENT_JOBS) as pool:
        manifests = list(pool.map(train, groups))
    return pd.concat(manifests, ignore_index=True)


def build_knowledge_injection(
    silver_xai: DataFrame,
    silver_ood: DataFrame,
    injection_silver_xai: DataFrame,
    injection_silver_ood: DataFrame,
    injection_adapter_zoo: pd.DataFrame,
    injection: dict[str, Any],
) -> pd.DataFrame:
    """Gold `knowledge_injection` from the baseline's and the refined adapters' test rows."""
    if injection_adapter_zoo.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    bases = sorted(set(injection_adapter_zoo["base_adapter_id"]))
    clean_columns = ["image_id", "adapter_id", *{c for c, _ in CLEAN_METRICS.values()}]
    ood_columns = ["image_id", "adapter_id", "corruption", "severity", "is_correct"]

    def baseline(table: DataFrame, columns: list[str]) -> pd.DataFrame:
        return table.filter(F.col("adapter_id").isin(bases)).select(*columns).toPandas()

    def reference(table: DataFrame) -> DataFrame:  # the measure is on the reference grid
        return table.filter(F.col("shift_family") == "reference")

    clean = with_arms(
        baseline(silver_xai, clean_columns),
        injection_silver_xai.select(*clean_columns).toPandas(),
        injection_adapter_zoo,
    )
    ood = with_arms(
        baseline(reference(silver_ood), ood_columns),
        reference(injection_silver_ood).select(*ood_columns).toPandas(),
        injection_adapter_zoo,
    )
    return knowledge_injection_table(
        clean, ood, MeasureSettings.from_params(injection.get("measure"))
    )


def plot_knowledge_injection(knowledge_injection: pd.DataFrame) -> Figure:
    return injection_plot(knowledge_injection)


def knowledge_injection_gallery(
    injection_failures: pd.DataFrame,
    knowledge_injection_images: pd.DataFrame,
    bronze_images: DataFrame,
    adapter_zoo: pd.DataFrame,
    injection: dict[str, Any],
) -> Figure:
    """A few failures (the validation image as the adapter saw it, with its attention) beside
    the images made for them."""
    gallery = injection["gallery"]
    motivated = set(knowledge_injection_images["motivated_by"].dropna())
    shown = injection_failures[injection_failures["image_id"].isin(motivated)]
    shown = shown[shown["adapter_id"] == shown["adapter_id"].min()] if len(shown) else shown
    ids = sorted(set(shown["image_id"]))
    rows = (
        bronze_images.filter(F.col("image_id").isin(ids))
        .select("image_id", "height", "width", "pixels")
        .toPandas()
    )
    crop = None
    if len(shown):
        path = adapter_zoo.set_index("adapter_id").loc[shown["adapter_id"].iloc[0], "path"]
        crop = eval_crop_of(read_adapter_files(Path(path)))
    pixels = centre_crop_arrays(pixels_from_rows(rows), crop) if len(rows) else []
    images = dict(zip(rows["image_id"], pixels, strict=True))
    names = _class_names(bronze_images.filter(F.col("split") == "train"))
    return injection_gallery(
        shown,
        images,
        knowledge_injection_images,
        names,
        int(gallery["failures"]),
        int(gallery["generated_per_failure"]),
    )


def write_knowledge_injection_report(
    injection_failure_profile: pd.DataFrame,
    knowledge_injection: pd.DataFrame,
    knowledge_injection_images: pd.DataFrame,
    injection: dict[str, Any],
) -> str:
    measure = MeasureSettings.from_params(injection.get("measure"))
    return injection_report(
        injection_failure_profile,
        knowledge_injection,
        knowledge_injection_images.drop(columns=["pixels", "mask"]),
        str(injection["generator"]["name"]),
        DiagnosisConfig.from_params(injection.get("diagnosis")).split,
        measure.ci_alpha,
    )
