"""Spark glue: the session and the Pandas UDF wrappers around `xai_kedro.core`."""
