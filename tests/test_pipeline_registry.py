"""Listing pipelines is quick and quiet: no heavy import, no warning; each pipeline is built on
first use and is then the same as its package's `create_pipeline()`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT
from xai_kedro.pipeline_registry import (
    SEPARATE_RUNS,
    LazyPipeline,
    pipeline_names,
    register_pipelines,
)

HEAVY_MODULES = ("torch", "transformers", "pyspark", "mlflow", "peft", "sklearn", "matplotlib")
CLI_TIMEOUT_S = 120
LIST_IN_FRESH_PROCESS = f"""
import json, sys, warnings
warnings.simplefilter("error")  # any warning while listing fails the check
from pathlib import Path
from kedro.framework.startup import bootstrap_project
bootstrap_project(Path({str(PROJECT_ROOT)!r}))
from kedro.framework.project import pipelines, settings
names = sorted(pipelines)
print(json.dumps({{"names": names, "heavy": [m for m in {HEAVY_MODULES!r} if m in sys.modules],
                  "hooks": len(settings.HOOKS)}}))
"""


def _environment() -> dict[str, str]:
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}


def test_listing_pipelines_imports_no_heavy_module_and_warns_nothing():
    result = subprocess.run(
        [sys.executable, "-c", LIST_IN_FRESH_PROCESS],
        cwd=PROJECT_ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["names"] == sorted(["__default__", *pipeline_names()])
    assert {"ingestion", "adapter_training", "xai_silver", "ood", "meta_learning"} <= set(
        report["names"]
    )
    assert report["heavy"] == []
    assert report["hooks"] >= 2


def test_kedro_registry_list_prints_only_the_names():
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "registry", "list"],
        cwd=PROJECT_ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=True,
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [f"- {name}" for name in sorted(["__default__", *pipeline_names()])]


def test_a_lazy_pipeline_builds_on_first_use_and_equals_the_package_pipeline():
    from xai_kedro.pipelines.meta_learning import create_pipeline

    registry = register_pipelines()
    lazy = registry["meta_learning"]
    assert isinstance(lazy, LazyPipeline) and "not built" in repr(lazy)
    expected = create_pipeline()
    assert {n.name for n in lazy.nodes} == {n.name for n in expected.nodes}
    assert lazy.all_outputs() == expected.all_outputs()
    default = registry["__default__"]
    assert set(default.all_outputs()) >= set(expected.all_outputs())
    in_default = [name for name in pipeline_names() if name not in SEPARATE_RUNS]
    assert len(default.nodes) == sum(len(registry[name].nodes) for name in in_default)


def test_the_default_run_leaves_out_the_separate_runs_and_they_need_nothing_it_lacks():
    """`kedro run` is the five experiment pipelines; knowledge injection runs after it on its
    tables: every input of a separate run is a catalog dataset the default run writes."""
    registry = register_pipelines()
    default = registry["__default__"]
    assert "knowledge_injection" in SEPARATE_RUNS
    assert {"ingestion", "adapter_training", "xai_silver", "ood", "meta_learning"} == set(
        pipeline_names()
    ) - SEPARATE_RUNS
    for name in SEPARATE_RUNS:
        separate = registry[name]
        assert not {n.name for n in separate.nodes} & {n.name for n in default.nodes}
        needed = {d for d in separate.inputs() if not d.startswith("params:")}
        assert needed and needed <= default.all_outputs(), needed - default.all_outputs()
