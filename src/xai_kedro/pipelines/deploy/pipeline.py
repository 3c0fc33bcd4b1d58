"""The deploy pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from xai_kedro.core.meta.tables import MONITOR_TABLES

from .monitor_evaluation import evaluate_monitor
from .nodes import deploy_model


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                deploy_model,
                inputs=[
                    "adapter_selection",
                    "classifier_comparison",
                    "adapter_zoo",
                    "backbone_manifest",
                    "silver_xai",
                    "silver_ood",
                    "raw_image_listing",
                    "params:deploy",
                    "params:meta_learning.meta_learners",
                    "params:xai_silver.engine",
                    "params:ingestion",
                    "params:seed",
                ],
                outputs="deployed_model",
                name="deploy_model",
            ),
            node(
                evaluate_monitor,
                inputs=[
                    "deployed_model",
                    "bronze_images",
                    "bronze_embeddings",
                    "silver_source",
                    "params:monitor",
                    "params:ood",
                ],
                outputs=[*MONITOR_TABLES, "monitor_batch_regressor"],
                name="evaluate_monitor",
            ),
        ],
        namespace="deploy",
        prefix_datasets_with_namespace=False,
    )
