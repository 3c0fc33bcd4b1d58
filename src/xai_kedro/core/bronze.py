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
    flat = np.frombuffer(b"".join(bytes(p) for p in rows["pixels"]), dtype=np.uint8)
    return flat.reshape(len(rows), height, width, 3)


def masks_from_rows(rows: pd.DataFrame) -> list[np.ndarray | None] | None:
    """`mask` column -> per-row [H, W] uint8 0/1 arrays (None where a row has no mask),
    or None when no row has one."""
    if rows.empty or "mask" not in rows or rows["mask"].isna().all():
        return None
    return [
        None
        if mask is None or (isinstance(mask, float) and np.isnan(mask))
        else np.frombuffer(bytes(mask), dtype=np.uint8).reshape(int(h), int(w))
        for mask, h, w in zip(rows["mask"], rows["height"], rows["width"], strict=True)
    ]
