"""The Gold tables, named once: `build_gold_tables` returns them, the meta_learning pipeline
writes them, the report reads them, and a test checks the catalog declares each."""

from __future__ import annotations

# The reference experiment's ten tables, then this project's additions, in report order.
REFERENCE_TABLES: tuple[str, ...] = (
    "correlations",
    "classifier_comparison",
    "feature_importance",
    "adapter_summary",
    "degradation",
    "qualitative_summary",
    "quantitative_summary",
    "xai_feature_ranking",
    "adapter_ranking",
    "worst_corruption",
)
GOLD_TABLES: tuple[str, ...] = (*REFERENCE_TABLES, "accuracy_estimation", "classifier_scores")
# Written by the ood pipeline, which needs it for its own plot; meta_learning reads it.
FROM_OOD_PIPELINE: tuple[str, ...] = ("degradation",)
