"""Gold layer: correlations, meta-learners, accuracy estimation, plots and the report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
