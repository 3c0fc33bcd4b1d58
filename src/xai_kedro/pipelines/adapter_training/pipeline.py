"""The adapter_training pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import plot_training_curves, train_adapter_zoo


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                train_adapter_zoo,
                inputs=[
                    "bronze_images",
                    "backbone_manifest",
                    "params:adapter_training.zoo",
                    "params:adapter_training.training",
                    "params:execution",
                ],
                outputs=["adapter_zoo", "adapter_training_curves"],
                name="train_adapter_zoo",
            ),
            node(
                plot_training_curves,
                inputs="adapter_training_curves",
                outputs="adapter_training_curves_plot",
                name="plot_training_curves",
            ),
        ],
        namespace="adapter_training",
        prefix_datasets_with_namespace=False,
    )
