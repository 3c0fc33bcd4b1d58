"""The `silver_ood` table, declared once: keys, corruption condition, prediction columns."""

from __future__ import annotations

from xai_kedro.core.common.columns import IMAGE_ADAPTER_KEYS, Column
from xai_kedro.core.models.inference import (
    CONDITION_COLUMNS,
    LABEL_COLUMN,
    LOGITS_COLUMN,
    PREDICTION_COLUMNS,
)

# `silver_source` (the validation split, clean and under the source-side shifts) has the same
# columns: it is the labelled source of the label-free accuracy estimators.
SILVER_OOD: tuple[Column, ...] = (
    *IMAGE_ADAPTER_KEYS,
    *CONDITION_COLUMNS,
    LABEL_COLUMN,
    *PREDICTION_COLUMNS,
    LOGITS_COLUMN,
)
SILVER_OOD_KEYS = [c.name for c in SILVER_OOD if c.role == "key"]
