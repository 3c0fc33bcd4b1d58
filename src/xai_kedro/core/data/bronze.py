"""Bronze rows (bytes columns) <-> image arrays, shared by every stage that reads Bronze."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.common.errors import UserError


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
    recipe that takes random `size` crops of larger stored images (the reference experiment: 224 of 256)."""
    if size is None:
        return arrays
    height, width = arrays.shape[1:3]
    if size > min(height, width):
        raise ValueError(f"eval_crop {size} is larger than the stored {height}x{width} images")
    top, left = (height - size) // 2, (width - size) // 2
    return arrays[:, top : top + size, left : left + size]


# ------------------------------------------------------------------ reuse and checks
#: Bump when decoding, quarantine or split rules change what a Bronze row holds: a previous
#: Bronze table built under another format is never reused.
BRONZE_FORMAT = 2
_FINGERPRINT_COLUMNS = (
    "rel_path", "image_id", "label", "label_name", "split", "problem",
    "size_bytes", "file_hash", "mask_size_bytes", "mask_hash",
)  # fmt: skip


def input_fingerprint(files: pd.DataFrame, settings: Mapping[str, Any]) -> str:
    """sha256 of what Bronze is made from: every listed file (path, label, split, size, content
    hash, its mask's size and hash, the listing's flag) and the settings that turn it into rows.

    Absolute paths are left out, so a moved project keeps its fingerprint.
    """
    digest = hashlib.sha256(
        json.dumps({"format": BRONZE_FORMAT, **settings}, sort_keys=True, default=str).encode()
    )
    table = files_table(files)
    for row in table.itertuples(index=False):
        digest.update(("\x1f".join("" if v is None else str(v) for v in row) + "\n").encode())
    return digest.hexdigest()


def files_table(files: pd.DataFrame) -> pd.DataFrame:
    """The fingerprinted columns of a listing with file stats, sorted by path (stored beside
    Bronze so the next run can say which files changed)."""
    table = files[list(_FINGERPRINT_COLUMNS)].astype(object)
    table = table.where(table.notna(), None)
    return table.sort_values("rel_path", kind="stable", ignore_index=True)


def describe_changes(previous: pd.DataFrame, current: pd.DataFrame, shown: int = 3) -> str:
    """'2 files changed (a.png, b.png), 1 added (c.png), 0 removed' between two files tables."""
    before = previous.set_index("rel_path")
    after = current.set_index("rel_path")
    added = sorted(set(after.index) - set(before.index))
    removed = sorted(set(before.index) - set(after.index))
    common = sorted(set(after.index) & set(before.index))
    left = before.loc[common].astype(str)
    right = after.loc[common, left.columns].astype(str)
    changed = sorted(left.index[(left != right).any(axis=1)])

    def part(paths: list[str], verb: str) -> str:
        names = ", ".join(paths[:shown]) + (", ..." if len(paths) > shown else "")
        return f"{len(paths)} {verb}" + (f" ({names})" if paths else "")

    return ", ".join(
        [part(changed, "files changed"), part(added, "added"), part(removed, "removed")]
    )


class IngestionError(UserError, RuntimeError):
    """Ingestion produced no Bronze the later stages can use; the message says why and where."""


def check_bronze(
    counts: pd.DataFrame,
    class_names: Mapping[int, str | None],
    quarantine: pd.DataFrame,
    root: str,
    required_splits: tuple[str, ...],
    every_class_in: tuple[str, ...],
) -> None:
    """Fail at the end of ingestion, not minutes later, when Bronze cannot feed the next stages.

    ``counts`` has one row per (split, label) with its ``count``; ``class_names`` are the classes
    the source lists. Errors name the source root and the quarantine counts by reason.
    """
    reasons = quarantine_summary(quarantine)
    total = int(counts["count"].sum()) if len(counts) else 0
    if total == 0:
        raise IngestionError(
            f"ingestion: no usable image under {root}: {len(quarantine)} listed files, "
            f"all quarantined ({reasons})"
        )
    present = counts[counts["count"] > 0]
    for split in required_splits:
        if not (present["split"] == split).any():
            raise IngestionError(
                f"ingestion: split {split!r} has no image under {root} (the later stages need "
                f"{list(required_splits)}; splits present: {sorted(set(present['split']))}); "
                f"quarantined: {reasons}"
            )
    for split in every_class_in:
        have = set(present.loc[present["split"] == split, "label"].astype(int))
        for label in sorted(set(class_names) - have):
            raise IngestionError(
                f"ingestion: class {class_names[label]!r} (label {label}) has no usable image in "
                f"split {split!r} under {root} (ingestion.every_class_in={list(every_class_in)}); "
                f"quarantined: {reasons}"
            )


def quarantine_summary(quarantine: pd.DataFrame) -> str:
    """'not_an_image 3, truncated 1' (most frequent first), or 'none'."""
    if quarantine.empty:
        return "none"
    counts = quarantine["reason"].value_counts()
    return ", ".join(f"{reason} {int(n)}" for reason, n in counts.items())
