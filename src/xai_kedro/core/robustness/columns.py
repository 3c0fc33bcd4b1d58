"""The `silver_ood` table, declared once: keys, corruption condition, prediction columns."""

from __future__ import annotations

from xai_kedro.core.common.columns import IMAGE_ADAPTER_KEYS, Column
from xai_kedro.core.models.inference import CONDITION_COLUMNS, LABEL_COLUMN, PREDICTION_COLUMNS

SILVER_OOD: tuple[Column, ...] = (
    *IMAGE_ADAPTER_KEYS,
    *CONDITION_COLUMNS,
    LABEL_COLUMN,
    *PREDICTION_COLUMNS,
)
SILVER_OOD_KEYS = [c.name for c in SILVER_OOD if c.role == "key"]
