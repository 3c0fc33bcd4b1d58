"""The ood pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from xai_kedro.spark.silver_nodes import compute_silver_ood, compute_silver_source, silver_inputs

from .nodes import degradation_table, plot_degradation


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                compute_silver_ood,
                inputs=silver_inputs("ood"),
                outputs="silver_ood",
                name="compute_silver_ood",
            ),
            node(
                compute_silver_source,
                inputs=silver_inputs("ood"),
                outputs="silver_source",
                name="compute_silver_source",
            ),
            node(
                degradation_table,
                inputs=["silver_xai", "silver_ood", "adapter_zoo"],
                outputs="degradation",
                name="degradation_table",
            ),
            node(
                plot_degradation,
                inputs="degradation",
                outputs="degradation_plot",
                name="plot_degradation",
            ),
        ],
        namespace="ood",
        prefix_datasets_with_namespace=False,
    )
