"""The ood pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline

from xai_kedro.pipelines import namespaced
from xai_kedro.spark.silver_nodes import compute_silver_ood, compute_silver_source, silver_inputs

from .nodes import degradation_table, plot_degradation


def create_pipeline(**kwargs) -> Pipeline:
    return namespaced(
        "ood",
        [
            (compute_silver_ood, silver_inputs("ood"), "silver_ood"),
            (compute_silver_source, silver_inputs("ood"), "silver_source"),
            (degradation_table, ["silver_xai", "silver_ood", "adapter_zoo"], "degradation"),
            (plot_degradation, "degradation", "degradation_plot"),
        ],
    )
