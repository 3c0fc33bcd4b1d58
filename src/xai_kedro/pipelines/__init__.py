"""One folder per pipeline, found by `find_pipelines`."""
