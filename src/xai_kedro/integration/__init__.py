"""The Kedro edge: the Spark hooks, MLflow run tracking and the datasets kedro-viz previews.

Only this package (and the thin nodes under `pipelines/`) knows Kedro. Nothing here imports
pyspark, torch or mlflow at module level: `settings.py` imports the hooks on every kedro command.
"""
