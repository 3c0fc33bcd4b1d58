"""Pandas-UDF bodies of the ingestion stage: thin wrappers around `core.images`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd
from pyspark.sql import types as T

from xai_kedro.core.data.decoding import (
    ImageRejected,
    content_hash,
    decode_image,
    decode_mask,
    pixels_to_bytes,
)

DECODED_SCHEMA = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("label", T.IntegerType(), False),
        T.StructField("label_name", T.StringType(), True),
        T.StructField("split", T.StringType(), True),
        T.StructField("height", T.IntegerType(), True),
        T.StructField("width", T.IntegerType(), True),
        T.StructField("pixels", T.BinaryType(), True),
        T.StructField("mask", T.BinaryType(), True),
        T.StructField("source_path", T.StringType(), False),
        T.StructField("content_hash", T.StringType(), True),
        T.StructField("reason", T.StringType(), True),
        T.StructField("message", T.StringType(), True),
    ]
)


def make_decoder(
    storage_size: int,
    min_side: int,
    max_pixels: int,
    mask_foreground_values: tuple[int, ...],
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """A `mapInPandas` function: raw bytes -> stored pixels, or a reason why not."""

    def decode_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield pd.DataFrame(
                [
                    _decode_row(row, storage_size, min_side, max_pixels, mask_foreground_values)
                    for row in batch.itertuples(index=False)
                ],
                columns=DECODED_SCHEMA.fieldNames(),
            )

    return decode_batches


def _decode_row(row, size: int, min_side: int, max_pixels: int, fg: tuple[int, ...]) -> dict:
    data = bytes(row.content) if row.content is not None else b""
    out = {
        "image_id": row.image_id,
        "label": int(row.label),
        "label_name": row.label_name,
        "split": row.split,
        "height": None,
        "width": None,
        "pixels": None,
        "mask": None,
        "source_path": row.rel_path,
        "content_hash": content_hash(data),
        "reason": None,
        "message": None,
    }
    try:
        decoded = decode_image(data, size=size, min_side=min_side, max_pixels=max_pixels)
    except ImageRejected as rejected:
        out["reason"], out["message"] = rejected.reason, str(rejected)
        return out
    out["pixels"] = pixels_to_bytes(decoded.pixels)
    out["height"], out["width"] = decoded.pixels.shape[:2]
    if row.mask_content is not None:
        try:
            mask = decode_mask(
                bytes(row.mask_content),
                size=size,
                foreground_values=fg,
                max_pixels=max_pixels,
                orientation=decoded.exif_orientation,
                expected_size=(decoded.original_width, decoded.original_height),
            )
        except ImageRejected as rejected:
            # A broken mask makes the object-attention metric wrong: quarantine, don't guess.
            out["pixels"] = None
            out["reason"], out["message"] = f"mask_{rejected.reason}", str(rejected)
            return out
        out["mask"] = pixels_to_bytes(mask)
    return out
