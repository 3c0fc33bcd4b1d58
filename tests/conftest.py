"""Shared fixtures: one Spark session for the whole test run, configured like
`conf/base/spark.yml`, and one tiny Kedro project run that every end-to-end test reads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# 2-core CI: one torch thread per process (driver and each Spark Python worker) avoids the
# oversubscription that slows CPU torch down by an order of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The small end-to-end configuration: conf/tiny (a Kedro env a user can run too), which writes
# under its own data_root.
TINY_ENV = "tiny"
TINY_DATA_ROOT = yaml.safe_load((PROJECT_ROOT / "conf" / TINY_ENV / "globals.yml").read_text())[
    "data_root"
]


# Fixtures that start Spark or a Kedro session: a test that uses one (directly or through
# another fixture) is an integration test; `pytest -m "not integration"` runs the pure library.
INTEGRATION_FIXTURES = frozenset({"spark", "tiny_run", "tiny_project"})
INTEGRATION_DIRS = ("pipelines", "viz", "notebooks")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(PROJECT_ROOT / "tests").parts
        uses = INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses or parts[0] in INTEGRATION_DIRS or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def spark():
    from xai_kedro.spark.session import configure_spark, get_spark

    conf = yaml.safe_load((PROJECT_ROOT / "conf/base/spark.yml").read_text())
    conf.update({"spark.master": "local[2]", "spark.sql.shuffle.partitions": 4})
    configure_spark(conf)
    session = get_spark()
    yield session
    session.stop()


def load_conf(env: str, key: str, conf_source: Path = PROJECT_ROOT / "conf") -> dict:
    """One config key (catalog, parameters, spark, ...) of an env, resolved as `kedro run` does."""
    from kedro.config import OmegaConfigLoader

    from xai_kedro.settings import CONFIG_LOADER_ARGS

    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    return OmegaConfigLoader(conf_source=str(conf_source), env=env, **args)[key]


def make_tiny_project(root: Path) -> Path:
    """Project root with the repo's conf/ (its `tiny` env included, conf/local left out) and
    no data."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    (root / "src").mkdir()  # the package itself is installed (editable)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir(exist_ok=True)
    (root / "data").mkdir()
    return root


def run_kedro(project: Path, monkeypatch, pipelines: list[str] | None = None, env: str = TINY_ENV):
    """`kedro run --env <env> --pipelines ...` in-process, sharing the test Spark session."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    monkeypatch.chdir(project)
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        return session.run(pipeline_names=pipelines)


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """An empty tiny project (conf only); `tiny_run` fills its data/ once per session."""
    return make_tiny_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session")
def tiny_run(spark, tiny_project) -> Path:
    """The tiny project after `kedro run --env tiny` and then each separate run (knowledge
    injection), as the README runs them; shared by the end-to-end and notebook tests so the
    pipelines run once per pytest session."""
    from xai_kedro.pipeline_registry import SEPARATE_RUNS

    with pytest.MonkeyPatch.context() as mp:
        run_kedro(tiny_project, mp)
        for name in sorted(SEPARATE_RUNS):  # each its own run, as the README runs them
            run_kedro(tiny_project, mp, pipelines=[name])
    return tiny_project
