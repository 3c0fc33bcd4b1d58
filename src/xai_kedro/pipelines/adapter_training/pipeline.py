"""The adapter_training pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline

from xai_kedro.pipelines import namespaced

from .nodes import plot_training_curves, train_adapter_zoo


def create_pipeline(**kwargs) -> Pipeline:
    return namespaced(
        "adapter_training",
        [
            (
                train_adapter_zoo,
                [
                    "bronze_images",
                    "backbone_manifest",
                    "params:adapter_training",
                    "params:execution",
                ],
                ["adapter_zoo", "adapter_training_curves"],
            ),
            (plot_training_curves, "adapter_training_curves", "adapter_training_curves_plot"),
        ],
    )
