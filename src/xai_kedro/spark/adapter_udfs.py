"""One UDF machinery for every stage that runs the adapter zoo over Bronze images.

Each Python worker loads the frozen backbone once; adapter weights arrive in a broadcast (a few MB
each); per partition, each adapter is merged into a copy of the backbone once and evaluated on all
of the partition's images. The XAI and OOD stages differ only in the `evaluate` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pandas as pd
import torch

from xai_kedro.core.adapters import build_inference_model, read_adapter_meta
from xai_kedro.core.models.backbone import resolve_manifest_paths
from xai_kedro.core.models.compiled import CompileSettings, compile_forwards
from xai_kedro.spark.stages import BronzeBatch, SilverStage
from xai_kedro.spark.worker import (
    ensure_worker_logging,
    manifest_backbone,
    use_task_cpus,
    worker_device,
)


def eval_crop_of(files: dict[str, bytes]) -> int | None:
    """The adapter's own training crop (None: the whole stored image): every adapter is evaluated
    on the exact view it was validated on."""
    augmentation = read_adapter_meta(files)["config"].get("augmentation") or {}
    crop = augmentation.get("crop_size")
    return int(crop) if crop else None


def make_adapter_udf(
    stage: SilverStage,
    adapters: Any,
    backbone_manifest: dict[str, Any],
    num_classes: int,
    device: str = "auto",
    compile_settings: Mapping[str, Any] | None = None,
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A `mapInPandas` body yielding the stage's rows for every (row, adapter) of a partition.

    `compile_settings` (parameters `execution.compile`; None = on CUDA only) compiles each
    merged model's forwards; the graphs are shared by every adapter of the worker process."""
    columns = stage.schema.fieldNames()
    compiling = CompileSettings.from_params(compile_settings)  # a bad setting fails on the driver
    backbone_manifest = resolve_manifest_paths(backbone_manifest)  # workers have no project cwd

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        rows = [BronzeBatch.decode(batch) for batch in batches if len(batch)]
        if not rows:
            return
        ensure_worker_logging()
        use_task_cpus()
        target = worker_device(device)
        backbone = manifest_backbone(backbone_manifest, str(target))
        files_by_adapter: dict[str, dict[str, bytes]] = adapters.value
        for adapter_id in sorted(files_by_adapter):
            model = build_inference_model(backbone, files_by_adapter[adapter_id], num_classes)
            model = compile_forwards(model.to(target).eval(), compiling, target)
            crop = eval_crop_of(files_by_adapter[adapter_id])
            for batch in rows:
                result = stage.evaluate(model, batch.cropped(crop), target)
                yield result.assign(adapter_id=adapter_id)[columns]
            del model
            if target.type == "cuda":
                torch.cuda.empty_cache()

    return run
