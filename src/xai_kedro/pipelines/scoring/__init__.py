"""Batch scoring: a folder through ingestion's decoding and quarantine, scored on Spark with the
registered model (a separate run: `kedro run --pipelines scoring`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
