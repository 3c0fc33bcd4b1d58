"""The ingestion pipeline: which node reads and writes which dataset (names shared with the catalog)."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import embed_images, ingest_images, list_images, prepare_backbone


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                list_images,
                inputs=["params:ingestion", "params:backbone"],
                outputs="raw_image_listing",
                name="list_images",
            ),
            node(
                ingest_images,
                inputs=["raw_image_listing", "params:ingestion", "params:backbone"],
                outputs=["bronze_images", "bronze_quarantine"],
                name="ingest_images",
            ),
            node(
                prepare_backbone,
                inputs=["bronze_images", "params:backbone", "params:execution", "params:seed"],
                outputs="backbone_manifest",
                name="prepare_backbone",
            ),
            node(
                embed_images,
                inputs=[
                    "bronze_images",
                    "backbone_manifest",
                    "params:ingestion.embedding",
                    "params:ingestion.reuse",
                    "params:execution",
                ],
                outputs="bronze_embeddings",
                name="embed_images",
            ),
        ],
        namespace="ingestion",
        prefix_datasets_with_namespace=False,
    )
