"""Catalog datasets with kedro-viz previews: pandas tables and reports (`preview`), Spark
tables (`spark`). Named by module in the catalog, so a pandas dataset never imports pyspark."""
