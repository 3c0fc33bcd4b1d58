"""Knowledge injection's image pool over Bronze: the training split's ids and labels on the
driver, its pixels and masks fetched by id only when a generator asks for them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from xai_kedro.core.data.bronze import masks_from_rows, pixels_from_rows
from xai_kedro.core.injection.generator_api import ImagePool

POOL_COLUMNS = ["image_id", "height", "width", "pixels", "mask"]
POOL_SPLIT = "train"


def training_pool(bronze_images: DataFrame) -> ImagePool:
    """The training split as a pool: ids/labels now, pixels fetched by id when a generator asks."""
    train = bronze_images.filter(F.col("split") == POOL_SPLIT)
    keys = (
        train.select("image_id", "label", F.col("mask").isNotNull().alias("has_mask"), "height")
        .orderBy("image_id")
        .toPandas()
    )
    if keys.empty:
        raise ValueError(f"bronze_images has no '{POOL_SPLIT}' rows to generate from")
    sizes = set(keys["height"])
    if len(sizes) != 1:
        raise ValueError(f"training images of different sizes {sorted(sizes)}")

    def fetch(ids: Iterable[str]) -> tuple[np.ndarray, list[np.ndarray | None] | None]:
        wanted = list(ids)
        rows = train.filter(F.col("image_id").isin(wanted)).select(*POOL_COLUMNS).toPandas()
        rows = rows.set_index("image_id").loc[wanted].reset_index()
        return pixels_from_rows(rows), masks_from_rows(rows)

    return ImagePool(
        tuple(keys["image_id"]),
        keys["label"].to_numpy(dtype=np.int64),
        keys["has_mask"].to_numpy(dtype=bool),
        fetch,
        int(sizes.pop()),
    )
