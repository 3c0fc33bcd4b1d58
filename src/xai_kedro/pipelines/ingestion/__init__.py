"""Bronze layer: raw files -> validated pixels, quarantine, splits, backbone, embeddings."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
