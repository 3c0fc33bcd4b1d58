"""Iterator Pandas UDF: Bronze rows -> frozen-backbone CLS embeddings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pandas as pd

from xai_kedro.core.common.columns import Column
from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.models.backbone import resolve_manifest_paths
from xai_kedro.core.models.embeddings import embed_images
from xai_kedro.spark.schema import struct_of
from xai_kedro.spark.worker import (
    ensure_worker_logging,
    manifest_backbone,
    use_task_cpus,
    worker_device,
)

EMBEDDING_SCHEMA = struct_of(
    (
        Column("image_id", "string", "Bronze image key", role="key"),
        Column("embedding", "float_array", "frozen-backbone CLS embedding", role="payload"),
    )
)


def make_embedder(
    backbone_manifest: Mapping[str, Any], batch_size: int, device: str = "auto"
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    input_size = int(backbone_manifest["input_size"])
    backbone_manifest = resolve_manifest_paths(backbone_manifest)  # on the driver

    def embed_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        ensure_worker_logging()
        use_task_cpus()
        target = worker_device(device)
        backbone = manifest_backbone(backbone_manifest, str(target))
        for batch in batches:
            vectors = embed_images(
                backbone,
                pixels_from_rows(batch),
                input_size=input_size,
                device=target,
                batch_size=batch_size,
            )
            yield pd.DataFrame({"image_id": batch["image_id"].values, "embedding": list(vectors)})

    return embed_batches
