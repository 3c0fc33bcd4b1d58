"""Silver XAI: every (test image, adapter) pair through the batched XAI engine."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
