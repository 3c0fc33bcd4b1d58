"""The monitor pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import list_monitor_images, monitor_report, profile_batch


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                list_monitor_images,
                inputs="params:monitor",
                outputs="monitor_listing",
                name="list_monitor_images",
            ),
            node(
                profile_batch,
                inputs=["monitor_listing", "deployed_model", "params:monitor"],
                outputs=["monitor_images", "monitor_quarantine"],
                name="profile_batch",
            ),
            node(
                monitor_report,
                inputs=[
                    "monitor_images",
                    "monitor_quarantine",
                    "deployed_model",
                    "silver_source",
                    "bronze_embeddings",
                    "accuracy_estimation_summary",
                    "params:monitor",
                ],
                outputs=["monitor_estimates", "monitor_drift", "monitor_report", "monitor_plot"],
                name="monitor_report",
            ),
        ],
        namespace="monitor",
        prefix_datasets_with_namespace=False,
    )
