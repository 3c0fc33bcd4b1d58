"""The tiny project and its run live in tests/conftest.py (shared with tests/notebooks);
re-exported here for the tests that import them from this module."""

from tests.conftest import TINY_DATA_ROOT, TINY_ENV, make_tiny_project, run_kedro

__all__ = ["TINY_DATA_ROOT", "TINY_ENV", "make_tiny_project", "run_kedro"]
