"""Pure library: no kedro, no pyspark. Runs (and is benchmarked) on a bare GPU machine."""
