"""Stratified splits that do not move when rows are reordered, re-run or run elsewhere.

Within each label the rows are ranked by ``sha256(f"{seed}:{image_id}")`` -- a property of the
image, not of its row position -- and cut into consecutive blocks whose sizes are the
largest-remainder rounding of ``n * fraction``. Blocks follow the canonical order of
:data:`SPLIT_ORDER`, whatever the order of the ``fractions`` dict.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

SPLIT_ORDER: tuple[str, ...] = ("pretrain", "train", "val", "test")
TRAINVAL = "trainval"
FRACTION_TOLERANCE = 1e-6


def validate_fractions(fractions: dict[str, float], setting: str = "fractions") -> dict[str, float]:
    """Check split fractions (known names, finite, non-negative, sum 1) and return them as floats.

    ``setting`` names the parameter in messages (``ingestion.split.fractions`` from the driver).
    """
    if not fractions or not isinstance(fractions, Mapping):
        raise ValueError(f"{setting} must name at least one split of {SPLIT_ORDER}")
    unknown = set(fractions) - set(SPLIT_ORDER)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)} in {setting}; use {SPLIT_ORDER}")
    clean: dict[str, float] = {}
    for name, value in fractions.items():
        try:
            f = float(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{setting}: fraction for {name!r} is not a number: {value!r}"
            ) from exc
        if not math.isfinite(f) or f < 0:
            raise ValueError(
                f"{setting}: fraction for {name!r} must be finite and >= 0, got {value!r}"
            )
        clean[name] = f
    total = sum(clean.values())
    if abs(total - 1.0) > FRACTION_TOLERANCE:
        raise ValueError(
            f"{setting} must sum to 1 (within {FRACTION_TOLERANCE}), got {total}: {fractions}"
        )
    return clean


def validate_split_params(split: Mapping, setting: str = "ingestion.split") -> dict:
    """``{fractions, seed}`` checked on the driver: fractions as above, seed an integer."""
    if not isinstance(split, Mapping):
        raise ValueError(f"{setting} must be a mapping with 'fractions' and 'seed'")
    fractions = validate_fractions(split.get("fractions") or {}, f"{setting}.fractions")
    seed = split.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"{setting}.seed must be an integer, got {seed!r}")
    return {"fractions": fractions, "seed": seed}


def split_counts(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Largest-remainder rounding of ``n * fraction`` per split (sum == n).

    When ``n`` is at least the number of splits with a positive fraction, each of them gets at
    least one row (taken from the largest block), so small classes still reach val and test.
    """
    names = [s for s in SPLIT_ORDER if fractions.get(s, 0.0) > 0]
    quotas = {s: n * fractions[s] for s in names}
    counts = {s: math.floor(q) for s, q in quotas.items()}
    left = n - sum(counts.values())
    by_remainder = sorted(names, key=lambda s: (-(quotas[s] - counts[s]), SPLIT_ORDER.index(s)))
    for s in by_remainder[:left]:
        counts[s] += 1
    if n >= len(names):
        for s in names:
            if counts[s] == 0:
                donor = max(names, key=lambda d: (counts[d], -SPLIT_ORDER.index(d)))
                counts[donor] -= 1
                counts[s] += 1
    return {s: counts.get(s, 0) for s in SPLIT_ORDER}


def assign_splits(df: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Split per row (index-aligned with ``df``): keep train/val/test/pretrain, carve "trainval"
    into train/val in the ratio ``val / (train + val)``, and split rows without a split by
    ``fractions``, stratified by ``label``."""
    missing = {"image_id", "label", "split"} - set(df.columns)
    if missing:
        raise ValueError(
            f"assign_splits needs columns image_id, label, split; missing {sorted(missing)}"
        )
    fractions = validate_fractions(fractions)
    if df["image_id"].duplicated().any():
        dup = df.loc[df["image_id"].duplicated(), "image_id"].iloc[0]
        raise ValueError(f"image_id must be unique; {dup!r} appears more than once")
    current = df["split"].astype(object).where(df["split"].notna(), None)
    allowed = set(SPLIT_ORDER) | {TRAINVAL, None}
    bad = sorted({str(s) for s in current if s not in allowed})
    if bad:
        raise ValueError(
            f"unknown split values {bad}; expected {SPLIT_ORDER}, {TRAINVAL!r} or None"
        )

    out = current.to_numpy(dtype=object, copy=True)
    ids = df["image_id"].astype(str).to_numpy()
    labels = df["label"].to_numpy()
    trainval_pos = np.flatnonzero(current.to_numpy(dtype=object) == TRAINVAL)
    if len(trainval_pos):
        train, val = fractions.get("train", 0.0), fractions.get("val", 0.0)
        if train + val <= 0:
            raise ValueError(
                "rows with split 'trainval' need fractions['train'] + fractions['val'] > 0"
            )
        carve = {"train": train / (train + val), "val": val / (train + val)}
        _assign(trainval_pos, ids, labels, carve, seed, out)
    none_pos = np.flatnonzero(current.isna().to_numpy())
    if len(none_pos):
        _assign(none_pos, ids, labels, fractions, seed, out)
    return pd.Series(out, index=df.index, name="split", dtype=object)


def _assign(
    positions: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray,
    fractions: dict[str, float],
    seed: int,
    out: np.ndarray,
) -> None:
    """Fill ``out`` at ``positions``, class by class, in hash order."""
    for label in pd.unique(labels[positions]):
        members = positions[labels[positions] == label]
        keys = [hashlib.sha256(f"{seed}:{ids[p]}".encode()).hexdigest() for p in members]
        ordered = members[np.argsort(np.asarray(keys), kind="stable")]
        counts = split_counts(len(ordered), fractions)
        start = 0
        for name in SPLIT_ORDER:
            out[ordered[start : start + counts[name]]] = name
            start += counts[name]
