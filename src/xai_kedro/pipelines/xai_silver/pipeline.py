"""The xai_silver pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from xai_kedro.spark.silver_nodes import (
    compute_explainer_profiles,
    compute_explainer_scores,
    compute_silver_xai,
    silver_inputs,
)

from .nodes import build_explainer_faithfulness, failure_gallery


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                compute_silver_xai,
                inputs=silver_inputs("xai_silver"),
                outputs="silver_xai",
                name="compute_silver_xai",
            ),
            node(
                compute_explainer_profiles,
                inputs=silver_inputs("xai_silver"),
                outputs="silver_xai_explainers",
                name="compute_explainer_profiles",
            ),
            node(
                failure_gallery,
                inputs=[
                    "silver_xai",
                    "bronze_images",
                    "adapter_zoo",
                    "params:xai_silver.gallery",
                    "params:xai_silver.engine",
                ],
                outputs="failure_gallery",
                name="failure_gallery",
            ),
            node(
                compute_explainer_scores,
                inputs=silver_inputs("xai_silver"),
                outputs="silver_explainer_scores",
                name="compute_explainer_scores",
            ),
            node(
                build_explainer_faithfulness,
                inputs=["silver_explainer_scores", "params:xai_silver"],
                outputs=["explainer_faithfulness", "explainer_faithfulness_plot"],
                name="build_explainer_faithfulness",
            ),
        ],
        namespace="xai_silver",
        prefix_datasets_with_namespace=False,
    )
