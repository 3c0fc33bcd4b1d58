"""Thin node: package the selected adapter and its failure predictor, log and register it.

The choices and the files are `core.deploy`'s; here the run's tables are read, the bundle is
written, and the model is logged into the `kedro run`'s MLflow run (the tracking hook's; a run
of its own in `deploy.mlflow.uri` when tracking is off) and registered.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame

from xai_kedro.core.adapters import read_adapter_files
from xai_kedro.core.data.decoding import DecodeSettings
from xai_kedro.core.deploy.bundle import BundleSpec, backbone_megabytes, write_bundle
from xai_kedro.core.deploy.choice import (
    AdapterChoice,
    PredictorChoice,
    choose_adapter,
    choose_predictor,
    fit_predictor,
)
from xai_kedro.core.deploy.predictor import export_predictor
from xai_kedro.core.deploy.settings import DeploySettings
from xai_kedro.core.meta.prediction.features import build_meta_dataset
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings
from xai_kedro.core.models.backbone import resolve_manifest_paths
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.adapter_udfs import eval_crop_of

logger = logging.getLogger(__name__)


def _or_none(value: float) -> float | None:
    """JSON has no NaN: a missing AUC is null."""
    return None if math.isnan(value) else value


def class_names(listing: pd.DataFrame) -> tuple[str, ...]:
    """Label index -> class name, from the listing (a class without a name keeps its index)."""
    labelled = listing[listing["label"] >= 0].drop_duplicates("label").sort_values("label")
    names = {int(r.label): r.label_name for r in labelled.itertuples(index=False)}
    count = max(names) + 1 if names else 0
    return tuple(str(names.get(i) or i) for i in range(count))


def _example_image(listing: pd.DataFrame) -> bytes:
    """The bytes of the first listed, readable image: the model's input example."""
    usable = listing[listing["problem"].isna()] if "problem" in listing else listing
    for path in usable["path"]:
        if path and Path(path).is_file():
            return Path(path).read_bytes()
    raise ValueError("raw_image_listing has no readable image for the model's input example")


def _predictor(
    comparison: pd.DataFrame,
    silver_xai: DataFrame,
    silver_ood: DataFrame,
    settings: DeploySettings,
    meta_learners: dict[str, Any],
    seed: int,
) -> tuple[bytes, PredictorChoice, str]:
    """The chosen label-free meta-learner, refitted on the run's meta rows, as JSON bytes."""
    choice = choose_predictor(comparison, settings.predictor.model, settings.predictor.feature_set)
    meta = build_meta_dataset(silver_xai.drop("heatmap").toPandas(), silver_ood.toPandas())
    learners = MetaLearnerSettings.from_params(meta_learners)
    pipeline, kind = fit_predictor(meta, choice, learners, seed)
    info = {
        "model": choice.model,
        "feature_set": choice.feature_set,
        "grouped_oof_auc": _or_none(choice.grouped_oof_auc),
        "reason": choice.reason,
        "n_rows": len(meta),
    }
    return export_predictor(pipeline, kind, choice.features, info), choice, kind


def _bundle(
    adapter: AdapterChoice,
    adapter_zoo: pd.DataFrame,
    manifest: dict[str, Any],
    settings: DeploySettings,
    parts: dict[str, Any],
) -> tuple[Path, dict[str, Any]]:
    """Write the bundle; returns its directory and how the backbone travels."""
    rows = adapter_zoo[adapter_zoo["adapter_id"] == adapter.adapter_id]
    if rows.empty:
        raise ValueError(f"deploy: adapter {adapter.adapter_id!r} is not in adapter_zoo")
    files = read_adapter_files(Path(rows["path"].iloc[0]))
    weights_dir = resolve_manifest_paths(manifest)["weights_dir"]
    backbone_dir = Path(settings.backbone.path or weights_dir)
    size_mb = backbone_megabytes(backbone_dir)
    copy = size_mb <= settings.backbone.copy_max_mb
    spec = BundleSpec(
        adapter_id=adapter.adapter_id,
        adapter_files=files,
        backbone_dir=backbone_dir,
        copy_backbone=copy,
        eval_crop=eval_crop_of(files),
        description={"selection": asdict(adapter), "model_name": settings.model_name},
        **parts,
    )
    directory = write_bundle(Path(settings.bundle_dir), spec)
    how = "copied into the model" if copy else f"referenced at {backbone_dir.resolve()}"
    limit = settings.backbone.copy_max_mb
    logger.info("Backbone (%.1f MB) %s (deploy.backbone.copy_max_mb: %s)", size_mb, how, limit)
    return directory, {"copied": copy, "megabytes": size_mb, "dir": str(backbone_dir.resolve())}


def _tracked_run(settings: DeploySettings) -> tuple[str, str, bool]:
    """(tracking URI, run id, own run?): the `kedro run`'s open MLflow run, else a new run."""
    from xai_kedro.integration.tracking.hook import open_run
    from xai_kedro.integration.tracking.settings import resolve_tracking_uri

    current = open_run()
    if current is not None:
        return current[0], current[1], False
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(settings.mlflow.uri, Path.cwd())
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(settings.mlflow.experiment)
    )
    run = client.create_run(experiment_id, run_name="deploy", tags={"kedro.pipelines": "deploy"})
    logger.info("No tracked kedro run is open: logging the model into run %s", run.info.run_id)
    return uri, run.info.run_id, True


def _log_and_register(
    directory: Path, settings: DeploySettings, example: bytes, tags: dict[str, str]
) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    from xai_kedro.core.deploy.model import log_deployed_model

    uri, run_id, own = _tracked_run(settings)
    name = settings.model_name if settings.mlflow.register else None
    try:
        info = log_deployed_model(
            directory,
            tracking_uri=uri,
            run_id=run_id,
            registered_name=name,
            example_image=example,
            tags=tags,
        )
    finally:
        if own:
            MlflowClient(uri).set_terminated(run_id, "FINISHED")
    version = info.registered_model_version
    if version is not None:
        client = MlflowClient(uri, registry_uri=uri)
        for key, value in tags.items():
            client.set_model_version_tag(name, str(version), key, value)
    return {
        "model_name": name,
        "version": None if version is None else int(version),
        "model_uri": f"models:/{name}/{version}" if version is not None else info.model_uri,
        "logged_model_uri": info.model_uri,
        "run_id": run_id,
        "tracking_uri": uri,
    }


def deploy_model(
    adapter_selection: pd.DataFrame,
    classifier_comparison: pd.DataFrame,
    adapter_zoo: pd.DataFrame,
    backbone_manifest: dict[str, Any],
    silver_xai: DataFrame,
    silver_ood: DataFrame,
    raw_image_listing: pd.DataFrame,
    deploy: dict[str, Any],
    meta_learners: dict[str, Any],
    engine: dict[str, Any],
    ingestion: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Package the selected adapter + failure predictor, log it as an MLflow pyfunc model and
    register it; returns what was registered (name, version, run, adapter, predictor)."""
    settings = DeploySettings.from_params(deploy)
    adapter = choose_adapter(adapter_selection, settings.selection.rule, settings.selection.shift)
    logger.info("Deploying adapter %s: %s", adapter.adapter_id, adapter.reason)
    predictor, choice, kind = _predictor(
        classifier_comparison, silver_xai, silver_ood, settings, meta_learners, seed
    )
    parts = {
        "class_names": class_names(raw_image_listing),
        "decode": DecodeSettings.from_params(ingestion),
        "xai": XAIConfig.from_params({"input_size": backbone_manifest["input_size"], **engine}),
        "predictor": predictor,
    }
    directory, backbone = _bundle(adapter, adapter_zoo, backbone_manifest, settings, parts)
    tags = {
        "adapter_id": adapter.adapter_id,
        "selection_method": adapter.method,
        "predictor": f"{choice.model} on {choice.feature_set}",
    }
    record = _log_and_register(directory, settings, _example_image(raw_image_listing), tags)
    logger.info("Registered %s (run %s)", record["model_uri"], record["run_id"])
    return {
        **record,
        "adapter_id": adapter.adapter_id,
        "selection": asdict(adapter),
        "predictor": {
            **asdict(choice),
            "features": list(choice.features),
            "kind": kind,
            "grouped_oof_auc": _or_none(choice.grouped_oof_auc),
        },  # fmt: skip
        "class_names": list(parts["class_names"]),
        "bundle_dir": str(directory.resolve()),
        "backbone": backbone,
    }
