"""One UDF machinery for every stage that runs the adapter zoo over Bronze images.

Each Python worker loads the frozen backbone once; adapter weights arrive in a broadcast (a few MB
each); per partition, each adapter is merged into a copy of the backbone once and evaluated on all
of the partition's images. The XAI and OOD stages differ only in the `evaluate` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import torch
from pyspark.sql import types as T

from xai_kedro.core.adapters import build_inference_model, read_adapter_meta
from xai_kedro.spark.worker import (
    ensure_worker_logging,
    manifest_backbone,
    use_task_cpus,
    worker_device,
)

# (merged model, Bronze rows, device, eval crop) -> output rows, each carrying its `image_id`.
# The crop is the adapter's own training crop (None: whole stored image), so every adapter is
# evaluated on the exact view it was validated on.
Evaluate = Callable[[torch.nn.Module, pd.DataFrame, torch.device, int | None], pd.DataFrame]


def eval_crop_of(files: dict[str, bytes]) -> int | None:
    augmentation = read_adapter_meta(files)["config"].get("augmentation") or {}
    crop = augmentation.get("crop_size")
    return int(crop) if crop else None


def make_adapter_udf(
    evaluate: Evaluate,
    schema: T.StructType,
    adapters: Any,
    backbone_manifest: dict[str, Any],
    num_classes: int,
    device: str = "auto",
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A `mapInPandas` body yielding `schema` rows for every (row, adapter) of a partition."""
    columns = schema.fieldNames()

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        rows = [batch for batch in batches if len(batch)]
        if not rows:
            return
        ensure_worker_logging()
        use_task_cpus()
        target = worker_device(device)
        backbone = manifest_backbone(backbone_manifest, str(target))
        files_by_adapter: dict[str, dict[str, bytes]] = adapters.value
        for adapter_id in sorted(files_by_adapter):
            model = build_inference_model(backbone, files_by_adapter[adapter_id], num_classes)
            model = model.to(target).eval()
            crop = eval_crop_of(files_by_adapter[adapter_id])
            for batch in rows:
                result = evaluate(model, batch, target, crop).assign(adapter_id=adapter_id)
                yield result[columns]
            del model
            if target.type == "cuda":
                torch.cuda.empty_cache()

    return run
