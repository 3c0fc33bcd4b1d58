"""The `silver_xai` table, declared once: keys, prediction columns, every registered metric."""

from __future__ import annotations

from xai_kedro.core.common.columns import IMAGE_ADAPTER_KEYS, Column, names
from xai_kedro.core.models.inference import LABEL_COLUMN, PREDICTION_COLUMNS
from xai_kedro.core.xai.metrics import XAI_METRICS

TARGET_COLUMN = Column("target_class", "int", "class whose probability the curves follow")
HEATMAP_COLUMN = Column(
    "heatmap", "float_array", "patch heatmap (when kept)", role="payload", nullable=True
)
METRIC_COLUMNS: tuple[Column, ...] = tuple(
    Column(
        m.name,
        "double",
        m.description,
        role="xai" if m.feature and m.label_free else "analysis",
        nullable=m.nullable,
        label_free=m.label_free,
    )
    for m in XAI_METRICS.values()
)
SILVER_XAI: tuple[Column, ...] = (
    *IMAGE_ADAPTER_KEYS,
    LABEL_COLUMN,
    TARGET_COLUMN,
    *PREDICTION_COLUMNS,
    *METRIC_COLUMNS,
    HEATMAP_COLUMN,
)
SILVER_XAI_KEYS = names(IMAGE_ADAPTER_KEYS)
# What `compute_xai` returns: every column but the keys.
XAI_COLUMNS = names(SILVER_XAI, without_keys=True)

# `silver_xai_explainers`: the same metrics under the further explainers whose profiles the
# meta-learning compares (`xai_silver.profile_explainers`); `silver_xai` holds engine.explainer's.
EXPLAINER_KEY = Column("explainer", "string", "explainer registry name", role="key")
SILVER_XAI_EXPLAINERS: tuple[Column, ...] = (
    *IMAGE_ADAPTER_KEYS,
    EXPLAINER_KEY,
    TARGET_COLUMN,
    *METRIC_COLUMNS,
)
SILVER_XAI_EXPLAINERS_KEYS = names((*IMAGE_ADAPTER_KEYS, EXPLAINER_KEY))
