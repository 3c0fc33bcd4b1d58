"""The monitor pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline

from xai_kedro.pipelines import folder_steps, namespaced

from .nodes import list_monitor_images, monitor_report, profile_batch


def create_pipeline(**kwargs) -> Pipeline:
    return namespaced(
        "monitor",
        [
            *folder_steps("monitor", list_monitor_images, profile_batch, "monitor_images"),
            (
                monitor_report,
                [
                    "monitor_images",
                    "monitor_quarantine",
                    "deployed_model",
                    "silver_source",
                    "bronze_embeddings",
                    "accuracy_estimation_summary",
                    "monitor_batch_regressor",
                    "params:monitor",
                ],
                ["monitor_estimates", "monitor_drift", "monitor_report", "monitor_plot"],
            ),
        ],
    )
