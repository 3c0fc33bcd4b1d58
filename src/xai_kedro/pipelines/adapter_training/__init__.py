"""The LoRA adapter zoo: one independent, resumable Spark task per config."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
