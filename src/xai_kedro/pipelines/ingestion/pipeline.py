"""The ingestion pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline

from xai_kedro.pipelines import namespaced

from .nodes import embed_images, ingest_images, list_images, prepare_backbone


def create_pipeline(**kwargs) -> Pipeline:
    return namespaced(
        "ingestion",
        [
            (list_images, ["params:ingestion", "params:backbone"], "raw_image_listing"),
            (
                ingest_images,
                ["raw_image_listing", "params:ingestion", "params:backbone"],
                ["bronze_images", "bronze_quarantine"],
            ),
            (
                prepare_backbone,
                ["bronze_images", "params:backbone", "params:execution", "params:seed"],
                "backbone_manifest",
            ),
            (
                embed_images,
                [
                    "bronze_images",
                    "backbone_manifest",
                    "params:ingestion.embedding",
                    "params:ingestion.reuse",
                    "params:execution",
                ],
                "bronze_embeddings",
            ),
        ],
    )
