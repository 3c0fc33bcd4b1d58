"""The ood pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from xai_kedro.spark.silver_nodes import compute_silver_ood, compute_silver_source

from .nodes import degradation_table, plot_degradation

# What every Silver node of this pipeline reads (spark.silver_nodes.silver_node's signature).
SILVER_INPUTS = [
    "bronze_images",
    "adapter_zoo",
    "backbone_manifest",
    "params:ood",
    "params:execution",
]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                compute_silver_ood,
                inputs=SILVER_INPUTS,
                outputs="silver_ood",
                name="compute_silver_ood",
            ),
            node(
                compute_silver_source,
                inputs=SILVER_INPUTS,
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
