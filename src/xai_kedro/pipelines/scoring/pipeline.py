"""The scoring pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import list_scoring_images, score_images


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                list_scoring_images,
                inputs="params:scoring",
                outputs="scoring_listing",
                name="list_scoring_images",
            ),
            node(
                score_images,
                inputs=["scoring_listing", "deployed_model", "params:scoring"],
                outputs=["scored_images", "scoring_quarantine"],
                name="score_images",
            ),
        ],
        namespace="scoring",
        prefix_datasets_with_namespace=False,
    )
