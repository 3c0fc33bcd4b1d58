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
# accuracy_estimation (long: adapter x method x shift), its summary (MAE, max error, rank
# correlation with intervals per method and shift) and the selection table
# (core.meta.adapters.selection).
ESTIMATION_TABLES: tuple[str, ...] = (
    "accuracy_estimation",
    "accuracy_estimation_summary",
    "adapter_selection",
)
# Does XAI add to the confidence baselines (AUROC / AURC / AUGRC, paired differences)?
BASELINE_TABLES: tuple[str, ...] = ("confidence_baselines", "confidence_baseline_differences")
# Which explainer's XAI profile predicts robustness best (core.meta.explainers.features).
EXPLAINER_FEATURES = "explainer_features"
# The answers per shift family (core.meta.families): the hypothesis, the headline and the
# adapter-level estimation MAE and selection regret.
FAMILY_TABLES: tuple[str, ...] = ("family_hypothesis", "family_headline", "family_estimation")
GOLD_TABLES: tuple[str, ...] = (
    *REFERENCE_TABLES,
    *ESTIMATION_TABLES,
    "classifier_scores",
    *BASELINE_TABLES,
    EXPLAINER_FEATURES,
    *FAMILY_TABLES,
)
# Written by the ood pipeline, which needs it for its own plot; meta_learning reads it.
FROM_OOD_PIPELINE: tuple[str, ...] = ("degradation",)
# Gold tables with a node of their own (they read Silver tables `build_gold_tables` does not).
OWN_NODE: tuple[str, ...] = (*FROM_OOD_PIPELINE, EXPLAINER_FEATURES, *FAMILY_TABLES)
# The monitor's evaluation (core.monitor.gold): written by the deploy pipeline's node after the
# model is packaged, off unless `monitor.evaluation.enabled` (conf/zoo); not in GOLD_TABLES, so
# the report and build_gold_tables do not wait for it.
MONITOR_TABLES: tuple[str, ...] = (
    "monitor_evaluation",
    "monitor_estimator_error",
    "monitor_drift_detection",
    "monitor_risk_auroc",
)
# Inputs the report reads beside the Gold tables (the quarantine is counted by reason; the
# explainer leaderboard is written by the xai_silver pipeline).
REPORT_EXTRA_INPUTS: tuple[str, ...] = ("bronze_quarantine", "explainer_faithfulness")
