"""Gold layer: statistics, meta-learners, accuracy estimation, tables, plots and report.

Pure pandas / numpy / scipy / scikit-learn / xgboost / matplotlib (no kedro, no pyspark).
"""

from xai_kedro.core.meta.comparison import (
    DEFAULT_META_PARAMS,
    compare_classifiers,
    grouped_folds,
    resolve_meta_params,
)
from xai_kedro.core.meta.estimation import (
    DEFAULT_ESTIMATION_PARAMS,
    accuracy_estimation,
    aggregate_adapter_features,
    atc_predict,
    atc_threshold,
    doc_predict,
    family_grouped_predictions,
    label_free_predictions,
    ood_accuracy_by_condition,
    ood_accuracy_per_adapter,
)
from xai_kedro.core.meta.estimation_summary import estimation_summary
from xai_kedro.core.meta.features import (
    CONFIDENCE_FEATURES,
    XAI_FEATURES,
    build_meta_dataset,
    default_feature_sets,
)
from xai_kedro.core.meta.gold import build_gold_tables
from xai_kedro.core.meta.importance import feature_importance
from xai_kedro.core.meta.learners import make_model
from xai_kedro.core.meta.report import summary_report
from xai_kedro.core.meta.stats import (
    bootstrap_auc_ci,
    bootstrap_ci,
    feature_outcome_stats,
    roc_auc,
)

__all__ = [
    "CONFIDENCE_FEATURES",
    "DEFAULT_ESTIMATION_PARAMS",
    "DEFAULT_META_PARAMS",
    "XAI_FEATURES",
    "accuracy_estimation",
    "aggregate_adapter_features",
    "atc_predict",
    "atc_threshold",
    "bootstrap_auc_ci",
    "bootstrap_ci",
    "build_gold_tables",
    "build_meta_dataset",
    "compare_classifiers",
    "default_feature_sets",
    "doc_predict",
    "feature_importance",
    "feature_outcome_stats",
    "grouped_folds",
    "estimation_summary",
    "family_grouped_predictions",
    "label_free_predictions",
    "make_model",
    "ood_accuracy_by_condition",
    "ood_accuracy_per_adapter",
    "resolve_meta_params",
    "roc_auc",
    "summary_report",
]
