"""The meta dataset: one row per OOD prediction with its clean-image features, and the
feature sets the meta-learners compare (derived from the Silver column declarations)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from xai_kedro.core.common.columns import of_role
from xai_kedro.core.models.inference import PREDICTION_COLUMNS
from xai_kedro.core.robustness.columns import family_rows
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

# Metrics computed from the probability of the curves' target class: label-free only when that
# target is the clean prediction (silver_xai's target_class == pred on every row).
TARGET_FOLLOWING: tuple[str, ...] = tuple(m.name for m in XAI_METRICS.values() if m.follows_target)
OOD_KEYS = (*KEYS, "corruption", "severity")
CURVES_FOLLOW_LABEL = "curves_follow_label"  # meta dataset attribute

XAI_SET, CONFIDENCE_SET, XAI_CONFIDENCE_SET = "xai", "confidence", "xai+confidence"
# Analysis only (needs ground-truth object masks): never a deployable predictor.
ANALYSIS_SET = "xai+object_share (analysis)"


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
    silver_ood = family_rows(silver_ood)  # the reference grid; core.meta.families does the rest
    require_columns(silver_ood, [*OOD_KEYS, TARGET], "silver_ood")
    # Gold is a function of the Silver rows, not of their order: sort by key before anything.
    silver_xai = silver_xai.sort_values(list(KEYS), ignore_index=True)
    silver_ood = silver_ood.sort_values(list(OOD_KEYS), ignore_index=True)
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
    meta = meta.sort_values(list(OOD_KEYS), ignore_index=True)
    follows_label = "target_class" in silver_xai.columns and bool(
        (silver_xai["target_class"] != silver_xai["pred"]).any()
    )
    meta.attrs[CURVES_FOLLOW_LABEL] = follows_label
    return meta


def deployable_xai_features(meta_df: pd.DataFrame) -> list[str]:
    """The label-free XAI features: curve metrics drop out when the curves followed the label."""
    if not meta_df.attrs.get(CURVES_FOLLOW_LABEL, False):
        return list(XAI_FEATURES)
    logger.warning(
        "silver_xai curves follow the true label (xai_silver.engine.target: label): %s carry "
        "the label and are left out of the deployable XAI features",
        ", ".join(TARGET_FOLLOWING),
    )
    return [f for f in XAI_FEATURES if f not in TARGET_FOLLOWING]


def default_feature_sets(
    meta_df: pd.DataFrame, include_object_share: bool = False
) -> dict[str, list[str]]:
    """The deployable XAI set, the confidence baselines and both together (all label-free).

    With ``include_object_share`` an analysis-only set adds the object-mask feature, when the
    column is complete (a partly missing column would put the sets on different rows).
    """
    xai = deployable_xai_features(meta_df)
    conf = list(CONFIDENCE_FEATURES)
    sets = {XAI_SET: xai, CONFIDENCE_SET: conf, XAI_CONFIDENCE_SET: xai + conf}
    if include_object_share and OBJECT_SHARE_FEATURE in meta_df.columns:
        col = meta_df[OBJECT_SHARE_FEATURE]
        if col.notna().all() and len(col):
            sets[ANALYSIS_SET] = [*xai, OBJECT_SHARE_FEATURE]
        else:
            logger.warning(
                "%s is missing for %d rows; no analysis set",
                OBJECT_SHARE_FEATURE,
                int(col.isna().sum()),
            )
    return sets
