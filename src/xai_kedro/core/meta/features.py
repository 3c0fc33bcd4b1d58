"""The meta dataset: one row per OOD prediction with its clean-image features, and the
feature sets the meta-learners compare (derived from the Silver column declarations)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from xai_kedro.core.common.columns import of_role
from xai_kedro.core.models.inference import PREDICTION_COLUMNS
from xai_kedro.core.xai.metrics import XAI_METRICS

logger = logging.getLogger(__name__)

KEYS = ("image_id", "adapter_id")
TARGET = "is_correct"
GROUP = "image_id"
# Derived from the Silver declarations: metrics flagged as features, confidence columns, and the
# ground-truth (mask) metrics that are analysis only.
XAI_FEATURES: tuple[str, ...] = tuple(
    m.name for m in XAI_METRICS.values() if m.feature and m.label_free
)
ANALYSIS_FEATURES: tuple[str, ...] = tuple(
    m.name for m in XAI_METRICS.values() if m.feature and not m.label_free
)
OBJECT_SHARE_FEATURE = "object_attention_share"
CONFIDENCE_FEATURES: tuple[str, ...] = of_role(PREDICTION_COLUMNS, "confidence")

XAI_SET, CONFIDENCE_SET, XAI_CONFIDENCE_SET = "xai", "confidence", "xai+confidence"


def require_columns(df: pd.DataFrame, cols: Sequence[str], table: str) -> None:
    """Raise a ValueError naming the table and the missing columns."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{table} lacks columns {missing}; has {list(df.columns)}")


def build_meta_dataset(silver_xai: pd.DataFrame, silver_ood: pd.DataFrame) -> pd.DataFrame:
    """One row per OOD prediction with the clean-image features of the same (image, adapter).

    Target ``is_correct`` is the OOD correctness; the clean prediction's correctness is kept as
    ``clean_is_correct``. Confidence features are the clean image's (a label-free baseline
    measured on the same input as the XAI features), not the corrupted image's.
    """
    require_columns(silver_xai, [*KEYS, TARGET, *XAI_FEATURES, *CONFIDENCE_FEATURES], "silver_xai")
    require_columns(silver_ood, [*KEYS, "corruption", "severity", TARGET], "silver_ood")
    dup = silver_xai.duplicated(list(KEYS))
    if dup.any():
        raise ValueError(f"silver_xai has {int(dup.sum())} duplicate (image_id, adapter_id) rows")
    feats = [*XAI_FEATURES, *CONFIDENCE_FEATURES]
    if OBJECT_SHARE_FEATURE in silver_xai.columns:
        feats.append(OBJECT_SHARE_FEATURE)
    extra = [c for c in ("label",) if c in silver_xai.columns]
    clean = silver_xai[[*KEYS, *feats, *extra, TARGET]].rename(columns={TARGET: "clean_is_correct"})
    ood_cols = [*KEYS, "corruption", "severity"]
    if "severity_value" in silver_ood.columns:
        ood_cols.append("severity_value")
    ood = silver_ood[[*ood_cols, TARGET]]
    meta = ood.merge(clean, on=list(KEYS), how="inner", validate="many_to_one")
    if len(meta) < len(ood):
        logger.warning(
            "build_meta_dataset: %d of %d OOD rows have no clean features and are dropped",
            len(ood) - len(meta),
            len(ood),
        )
    meta[TARGET] = meta[TARGET].astype(bool)
    meta["clean_is_correct"] = meta["clean_is_correct"].astype(bool)
    return meta.reset_index(drop=True)


def default_feature_sets(
    meta_df: pd.DataFrame, include_object_share: bool = True
) -> dict[str, list[str]]:
    """XAI, CONFIDENCE and XAI+CONFIDENCE feature lists.

    ``object_attention_share`` joins XAI only when the column has no NaN: a partly missing
    column would force the sets onto different rows and make their AUCs incomparable.
    """
    xai = list(XAI_FEATURES)
    if include_object_share and OBJECT_SHARE_FEATURE in meta_df.columns:
        col = meta_df[OBJECT_SHARE_FEATURE]
        if col.notna().all() and len(col):
            xai.append(OBJECT_SHARE_FEATURE)
        elif col.notna().any():
            logger.warning(
                "%s is missing for %d rows; left out of the XAI feature set",
                OBJECT_SHARE_FEATURE,
                int(col.isna().sum()),
            )
    conf = list(CONFIDENCE_FEATURES)
    return {XAI_SET: xai, CONFIDENCE_SET: conf, XAI_CONFIDENCE_SET: xai + conf}
