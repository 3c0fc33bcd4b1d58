"""Iterator Pandas UDF: Bronze rows -> frozen-backbone CLS embeddings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pandas as pd
from pyspark.sql import types as T

from xai_kedro.core.data.bronze import pixels_from_rows
from xai_kedro.core.models.embeddings import embed_images
from xai_kedro.spark.worker import (
    ensure_worker_logging,
    manifest_backbone,
    use_task_cpus,
    worker_device,
)

EMBEDDING_SCHEMA = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("embedding", T.ArrayType(T.FloatType(), False), False),
    ]
)


def make_embedder(
    backbone_manifest: Mapping[str, Any], batch_size: int, device: str = "auto"
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    input_size = int(backbone_manifest["input_size"])

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
