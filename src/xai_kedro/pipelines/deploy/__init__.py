"""Deploy: the selected adapter and its failure predictor as a registered, servable MLflow model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
