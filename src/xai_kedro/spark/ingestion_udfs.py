"""Pandas-UDF bodies of the ingestion stage: thin wrappers around `core.data.decoding`.

The decoder reads each listed file itself on the executor (the paths the driver resolved), so
Spark opens exactly the files the listing names, holds no raw bytes in the JVM and needs no
per-path planning of a file source; a file the listing saw but that is gone, empty or unreadable
becomes a quarantine row like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from xai_kedro.core.common.columns import Column
from xai_kedro.core.data.decoding import (
    ImageRejected,
    content_hash,
    decode_image,
    decode_mask,
    pixels_to_bytes,
)
from xai_kedro.spark.schema import struct_of

# What the decoder returns per listed file: Bronze's columns, or a quarantine reason.
DECODED_COLUMNS = (
    Column("image_id", "string", "stable key from source name and path", role="key"),
    Column("label", "int", "class index", role="label"),
    Column("label_name", "string", "class name", role="label", nullable=True),
    Column("split", "string", "split the source assigned, if any", role="key", nullable=True),
    Column("height", "int", "stored height", role="payload", nullable=True),
    Column("width", "int", "stored width", role="payload", nullable=True),
    Column("pixels", "binary", "RGB uint8 at the storage size", role="payload", nullable=True),
    Column("mask", "binary", "object mask at the storage size", role="payload", nullable=True),
    Column("source_path", "string", "the file as listed", role="key"),
    Column("content_hash", "string", "sha256 of the file's bytes", role="payload", nullable=True),
    Column("reason", "string", "quarantine reason (None: usable)", role="payload", nullable=True),
    Column("message", "string", "what was wrong, for a person", role="payload", nullable=True),
)
DECODED_SCHEMA = struct_of(DECODED_COLUMNS)


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
        "content_hash": None,
        "reason": None,
        "message": None,
    }
    data, problem = read_listed_file(row.path)
    if data is None:
        out["reason"], out["message"] = problem
        return out
    out["content_hash"] = content_hash(data)
    try:
        decoded = decode_image(data, size=size, min_side=min_side, max_pixels=max_pixels)
    except ImageRejected as rejected:
        out["reason"], out["message"] = rejected.reason, str(rejected)
        return out
    out["pixels"] = pixels_to_bytes(decoded.pixels)
    out["height"], out["width"] = decoded.pixels.shape[:2]
    mask_bytes = None
    if row.mask_path is not None:
        mask_bytes, _ = read_listed_file(row.mask_path)  # a gone or empty mask: no mask
    if mask_bytes is not None:
        try:
            mask = decode_mask(
                mask_bytes,
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


def read_listed_file(path: str) -> tuple[bytes | None, tuple[str, str] | None]:
    """The bytes of a listed file, or None and the (reason, message) it is quarantined with."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None, ("missing", "listed but gone before Spark read it")
    except OSError as error:
        return None, ("unreadable", f"{type(error).__name__}: {error}")
    if not data:
        return None, ("empty", "file has 0 bytes")
    return data, None
