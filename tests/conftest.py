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

TINY_ENV = "tiny"
TINY_PARAMETERS = {
    "seed": 3,
    "backbone": {
        "input_size": 32,
        "pretrain": {
            "model": {
                "image_size": 32,
                "patch_size": 8,
                "hidden_size": 32,
                "num_layers": 2,
                "num_heads": 2,
                "mlp_ratio": 2,
            },
            "epochs": 3,
            "batch_size": 32,
        },
    },
    "ingestion": {
        "source": {
            "synthetic": {
                "num_classes": 3,
                "image_size": 32,
                "images_per_class": {"pretrain": 16, "train": 12, "val": 4, "test": 4},
            }
        },
        "storage_size": 32,
        "min_side": 16,
    },
    "adapter_training": {
        "zoo": {
            "defaults": {"epochs": 2, "batch_size": 16},
            "members": [
                {"adapter_id": "linear_probe", "rank": 0, "lr": 0.01},
                {"adapter_id": "r2_qv", "rank": 2},
                {
                    "adapter_id": "r4_dora",
                    "rank": 4,
                    "use_dora": True,
                    "use_rslora": True,
                    "target_roles": ["query", "value", "fc1", "fc2"],
                },
            ],
        },
    },
    "execution": {"threads_per_training_job": 1, "xai_partitions": 2, "ood_partitions": 2},
    "xai_silver": {"engine": {"steps": 4}},
    "knowledge_injection": {
        "adapters": ["linear_probe", "r2_qv"],
        "generator": {"per_failure": 2, "max_failures_per_adapter": 4},
        "measure": {"n_bootstrap": 50},
        "gallery": {"failures": 2, "generated_per_failure": 2},
    },
    "meta_learning": {
        "meta_learners": {
            "n_bootstrap": 30,
            "permutation_repeats": 2,
            "cv_folds": 3,
            "models": {
                "RandomForest": {"n_estimators": 20},
                "XGBoost": {"n_estimators": 20},
                "XGBoost_Tuned": {"n_estimators": 20},
            },
        },
        "accuracy_estimation": {"regressor": {"n_estimators": 20}},
    },
}


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
    """Project root with conf/ from the repo and a `tiny` env of small parameters (no data)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    (root / "src").mkdir()  # the package itself is installed (editable)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir(exist_ok=True)
    tiny = root / "conf" / TINY_ENV
    tiny.mkdir()
    (tiny / "parameters.yml").write_text(yaml.safe_dump(TINY_PARAMETERS, sort_keys=False))
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
        run_kedro(tiny_project, mp, pipelines=sorted(SEPARATE_RUNS))
    return tiny_project
