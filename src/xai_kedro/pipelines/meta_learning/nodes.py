"""Thin nodes around `core.meta`: Silver (Spark) -> Gold tables (pandas), plots, report."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from pyspark.sql import DataFrame

from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.explainers.features import (
    ExplainerFeatureSettings,
    explainer_feature_comparison,
)
from xai_kedro.core.meta.families import FamilyInputs, FamilySettings, family_tables
from xai_kedro.core.meta.gold import build_gold_tables
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings
from xai_kedro.core.meta.report import plots
from xai_kedro.core.meta.report.summary import summary_report
from xai_kedro.core.meta.tables import FAMILY_TABLES, GOLD_TABLES, OWN_NODE, REPORT_EXTRA_INPUTS
from xai_kedro.core.xai.settings import XAIConfig

logger = logging.getLogger(__name__)

BUILT_HERE = tuple(name for name in GOLD_TABLES if name not in OWN_NODE)


def build_gold(
    silver_xai: DataFrame,
    silver_ood: DataFrame,
    adapter_zoo: pd.DataFrame,
    degradation: pd.DataFrame,
    silver_source: DataFrame,
    params: dict[str, Any],
    seed: int,
) -> tuple[pd.DataFrame, ...]:
    """Join the Silver tables on the driver (they are narrow) and compute every Gold table."""
    xai = silver_xai.drop("heatmap").toPandas()
    ood = silver_ood.toPandas()
    source = silver_source.toPandas()
    logger.info(
        "Gold from %d clean, %d corrupted and %d source-split predictions",
        len(xai),
        len(ood),
        len(source),
    )
    tables = build_gold_tables(
        xai,
        ood,
        adapter_zoo,
        meta=MetaLearnerSettings.from_params(params.get("meta_learners")),
        estimation=EstimationSettings.from_params(params.get("accuracy_estimation")),
        seed=seed,
        degradation_table=degradation,
        silver_source=source,
    )
    return tuple(tables[name] for name in BUILT_HERE)


def build_explainer_features(
    silver_xai: DataFrame,
    silver_xai_explainers: DataFrame,
    silver_ood: DataFrame,
    params: dict[str, Any],
    engine: dict[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Gold `explainer_features`: each explainer's label-free XAI profile as a predictor of OOD
    correctness, alone, with confidence, and all together (grouped CV, intervals)."""
    return explainer_feature_comparison(
        silver_xai.drop("heatmap").toPandas(),
        silver_xai_explainers.toPandas(),
        silver_ood.toPandas(),
        primary=XAIConfig.from_params(engine).explainer,
        settings=ExplainerFeatureSettings.from_params(params.get("explainer_features")),
        meta_learners=MetaLearnerSettings.from_params(params.get("meta_learners")),
        seed=seed,
    )


def build_family_tables(
    silver_xai: DataFrame,
    silver_ood: DataFrame,
    silver_source: DataFrame,
    accuracy_estimation: pd.DataFrame,
    params: dict[str, Any],
    seed: int,
) -> tuple[pd.DataFrame, ...]:
    """Gold answers per shift family: the hypothesis (overall and per class), the headline and
    the adapter-level estimation and selection (silver_source: the label-free estimators';
    accuracy_estimation: the reference family's, reused)."""
    inputs = FamilyInputs(
        silver_xai.drop("heatmap").toPandas(),
        silver_ood.toPandas(),
        settings=FamilySettings.from_params(params.get("families")),
        seed=seed,
        meta_learners=MetaLearnerSettings.from_params(params.get("meta_learners")),
        estimation=EstimationSettings.from_params(params.get("accuracy_estimation")),
        silver_source=silver_source.toPandas(),
    )
    tables = family_tables(inputs, reference_estimate=accuracy_estimation)
    return tuple(tables[name] for name in FAMILY_TABLES)


def plot_correlations(correlations: pd.DataFrame) -> Figure:
    return plots.correlation_bars(correlations)


def plot_roc_curves(classifier_scores: pd.DataFrame) -> Figure:
    return plots.roc_curves(classifier_scores)


def plot_feature_importance(feature_importance: pd.DataFrame) -> Figure:
    return plots.feature_importance_plot(feature_importance)


def plot_adapter_ranking(adapter_ranking: pd.DataFrame) -> Figure:
    return plots.adapter_ranking_plot(adapter_ranking)


def plot_accuracy_estimation(accuracy_estimation: pd.DataFrame) -> Figure:
    return plots.accuracy_estimation_plot(accuracy_estimation)


def write_report(*tables: pd.DataFrame) -> str:
    """Markdown findings written from the numbers of the Gold tables (and the quarantine)."""
    return summary_report(dict(zip([*GOLD_TABLES, *REPORT_EXTRA_INPUTS], tables, strict=True)))
