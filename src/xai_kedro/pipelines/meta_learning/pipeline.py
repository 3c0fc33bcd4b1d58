"""The meta_learning pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from xai_kedro.core.meta.tables import FAMILY_TABLES, GOLD_TABLES, REPORT_EXTRA_INPUTS

from .nodes import (
    BUILT_HERE,
    build_explainer_features,
    build_family_tables,
    build_gold,
    plot_accuracy_estimation,
    plot_adapter_ranking,
    plot_correlations,
    plot_feature_importance,
    plot_roc_curves,
    write_report,
)

PLOTS = {
    "correlations_plot": (plot_correlations, "correlations"),
    "roc_curves_plot": (plot_roc_curves, "classifier_scores"),
    "feature_importance_plot": (plot_feature_importance, "feature_importance"),
    "adapter_ranking_plot": (plot_adapter_ranking, "adapter_ranking"),
    "accuracy_estimation_plot": (plot_accuracy_estimation, "accuracy_estimation"),
}


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        node(
            build_gold,
            inputs=[
                "silver_xai",
                "silver_ood",
                "adapter_zoo",
                "degradation",
                "silver_source",
                "params:meta_learning",
                "params:seed",
            ],
            outputs=list(BUILT_HERE),
            name="build_gold_tables",
        ),
        node(
            build_explainer_features,
            inputs=[
                "silver_xai",
                "silver_xai_explainers",
                "silver_ood",
                "params:meta_learning",
                "params:xai_silver.engine",
                "params:seed",
            ],
            outputs="explainer_features",
            name="build_explainer_features",
        ),
        node(
            build_family_tables,
            inputs=[
                "silver_xai",
                "silver_ood",
                "silver_source",
                "accuracy_estimation",
                "params:meta_learning",
                "params:seed",
            ],
            outputs=list(FAMILY_TABLES),
            name="build_family_tables",
        ),
        *[
            node(func, inputs=table, outputs=output, name=f"plot_{table}")
            for output, (func, table) in PLOTS.items()
        ],
        node(
            write_report,
            inputs=[*GOLD_TABLES, *REPORT_EXTRA_INPUTS],
            outputs="summary_report",
            name="write_report",
        ),
    ]
    return pipeline(
        nodes,
        namespace="meta_learning",
        prefix_datasets_with_namespace=False,
    )
