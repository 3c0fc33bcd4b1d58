"""The `silver_ood` table, declared once: keys, shift family, condition, prediction columns."""

from __future__ import annotations

import pandas as pd

from xai_kedro.core.common.columns import IMAGE_ADAPTER_KEYS, Column
from xai_kedro.core.models.inference import (
    CONDITION_COLUMNS,
    LABEL_COLUMN,
    LOGITS_COLUMN,
    PREDICTION_COLUMNS,
)

# Which family of shifts a row belongs to (`core.robustness.shifts`): `reference` for the
# corruption grid of `ood.preset` / `ood.corruptions` (and every `silver_source` row).
SHIFT_FAMILY_COLUMN = Column(
    "shift_family", "string", "shift family: reference, background, imagenet_c", role="key"
)
REFERENCE_FAMILY = "reference"

# `silver_source` (the validation split, clean and under the source-side shifts) has the same
# columns: it is the labelled source of the label-free accuracy estimators.
SILVER_OOD: tuple[Column, ...] = (
    *IMAGE_ADAPTER_KEYS,
    SHIFT_FAMILY_COLUMN,
    *CONDITION_COLUMNS,
    LABEL_COLUMN,
    *PREDICTION_COLUMNS,
    LOGITS_COLUMN,
)
SILVER_OOD_KEYS = [c.name for c in SILVER_OOD if c.role == "key"]


def family_rows(silver_ood: pd.DataFrame, family: str = REFERENCE_FAMILY) -> pd.DataFrame:
    """The rows of one shift family, without the `shift_family` column: what every consumer
    written before the families existed reads (a table without the column is all `reference`)."""
    if SHIFT_FAMILY_COLUMN.name not in silver_ood.columns:
        return silver_ood
    keep = silver_ood[SHIFT_FAMILY_COLUMN.name] == family
    return silver_ood.loc[keep].drop(columns=SHIFT_FAMILY_COLUMN.name).reset_index(drop=True)


def shift_families(silver_ood: pd.DataFrame) -> list[str]:
    """The families present, `reference` first, then in name order."""
    if SHIFT_FAMILY_COLUMN.name not in silver_ood.columns:
        return [REFERENCE_FAMILY]
    found = set(silver_ood[SHIFT_FAMILY_COLUMN.name].astype(str))
    return sorted(found, key=lambda f: (f != REFERENCE_FAMILY, f))
