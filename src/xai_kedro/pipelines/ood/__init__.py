"""Silver OOD: every adapter on every corrupted test image."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
