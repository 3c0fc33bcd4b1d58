"""Bronze rows (bytes columns) <-> image arrays, shared by every stage that reads Bronze."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pixels_from_rows(rows: pd.DataFrame) -> np.ndarray:
    """`pixels`/`height`/`width` columns -> [N, H, W, 3] uint8 (all rows share one size)."""
    if rows.empty:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    sizes = set(zip(rows["height"].astype(int), rows["width"].astype(int), strict=True))
    if len(sizes) != 1:
        raise ValueError(f"Bronze rows of different sizes cannot be batched: {sorted(sizes)[:5]}")
    height, width = sizes.pop()
    # bytearray: one copy into a writable buffer that torch.from_numpy accepts without warning
    flat = np.frombuffer(bytearray().join(rows["pixels"]), dtype=np.uint8)
    return flat.reshape(len(rows), height, width, 3)


def masks_from_rows(rows: pd.DataFrame) -> list[np.ndarray | None] | None:
    """`mask` column -> per-row [H, W] uint8 0/1 arrays (None where a row has no mask),
    or None when no row has one."""
    if rows.empty or "mask" not in rows or rows["mask"].isna().all():
        return None
    return [
        None
        if mask is None or (isinstance(mask, float) and np.isnan(mask))
        else np.frombuffer(bytearray(mask), dtype=np.uint8).reshape(int(h), int(w))
        for mask, h, w in zip(rows["mask"], rows["height"], rows["width"], strict=True)
    ]


def centre_crop_arrays(arrays: np.ndarray, size: int | None) -> np.ndarray:
    """Centre `size` x `size` crop of [N, H, W, ...] arrays: the evaluation view of a training
    recipe that takes random `size` crops of larger stored images (seed 001: 224 of 256)."""
    if size is None:
        return arrays
    height, width = arrays.shape[1:3]
    if size > min(height, width):
        raise ValueError(f"eval_crop {size} is larger than the stored {height}x{width} images")
    top, left = (height - size) // 2, (width - size) // 2
    return arrays[:, top : top + size, left : left + size]
