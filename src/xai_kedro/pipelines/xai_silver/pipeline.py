"""The xai_silver pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline

from xai_kedro.pipelines import namespaced
from xai_kedro.spark.silver_nodes import (
    compute_explainer_profiles,
    compute_explainer_scores,
    compute_silver_xai,
    silver_inputs,
)

from .learned import pretrain_tve, with_learned_explainers
from .nodes import build_explainer_faithfulness, failure_gallery

# The Silver nodes that run explainers also read the amortised explainers' artifacts.
LEARNED_INPUTS = [*silver_inputs("xai_silver"), "learned_explainers"]


def create_pipeline(**kwargs) -> Pipeline:
    return namespaced(
        "xai_silver",
        [
            (
                pretrain_tve,
                ["bronze_images", "backbone_manifest", "params:xai_silver", "params:execution"],
                "learned_explainers",
            ),
            (with_learned_explainers(compute_silver_xai), LEARNED_INPUTS, "silver_xai"),
            (
                with_learned_explainers(compute_explainer_profiles),
                LEARNED_INPUTS,
                "silver_xai_explainers",
            ),
            (
                failure_gallery,
                [
                    "silver_xai",
                    "bronze_images",
                    "adapter_zoo",
                    "params:xai_silver.gallery",
                    "params:xai_silver.engine",
                ],
                "failure_gallery",
            ),
            (
                with_learned_explainers(compute_explainer_scores),
                LEARNED_INPUTS,
                "silver_explainer_scores",
            ),
            (
                build_explainer_faithfulness,
                ["silver_explainer_scores", "params:xai_silver"],
                ["explainer_faithfulness", "explainer_faithfulness_plot"],
            ),
        ],
    )
