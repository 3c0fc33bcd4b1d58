"""The scoring pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline

from xai_kedro.pipelines import folder_steps, namespaced

from .nodes import list_scoring_images, score_images


def create_pipeline(**kwargs) -> Pipeline:
    return namespaced(
        "scoring", folder_steps("scoring", list_scoring_images, score_images, "scored_images")
    )
