"""Monitor: an unlabeled folder through ingestion's decoding and quarantine, scored on Spark with the registered model; estimated accuracy per label-free estimator with its measured error, embedding drift, failure risk and a batch report (a separate run: `kedro run --pipelines monitor`)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
