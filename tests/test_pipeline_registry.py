"""Listing pipelines is quick and quiet: no heavy import, no warning; each pipeline is built on
first use and is then the same as its package's `create_pipeline()`."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert {"knowledge_injection", "scoring"} <= SEPARATE_RUNS
    assert {"ingestion", "adapter_training", "xai_silver", "ood", "meta_learning", "deploy"} == set(
        pipeline_names()
    ) - SEPARATE_RUNS
    for name in SEPARATE_RUNS:
        separate = registry[name]
        assert not {n.name for n in separate.nodes} & {n.name for n in default.nodes}
        needed = {d for d in separate.inputs() if not d.startswith("params:")}
        assert needed and needed <= default.all_outputs(), needed - default.all_outputs()


def _imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module `path` (a module of `package`) imports, relative ones
    resolved; `from a import b` counts as both `a` and `a.b`."""
    names: set[str] = set()
    for statement in ast.walk(ast.parse(path.read_text())):
        if isinstance(statement, ast.Import):
            names.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - statement.level + 1]) if statement.level else ""
            module = ".".join(p for p in (base, statement.module or "") if p)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in statement.names)
    return names


def test_no_pipeline_imports_another_pipeline():
    """Shared node logic lives in spark/ or core/: a pipeline package imports no other one."""
    root = PROJECT_ROOT / "src" / "xai_kedro" / "pipelines"
    names = pipeline_names()
    assert len(names) >= 6
    crossing = {}
    for name in names:
        for path in sorted((root / name).rglob("*.py")):
            parts = path.relative_to(root.parent.parent).with_suffix("").parts
            package = ".".join(parts[:-1])  # a module's package; an __init__'s own
            others = {
                module
                for module in _imported_modules(path, package)
                for other in names
                if other != name
                and (module == f"xai_kedro.pipelines.{other}"
                     or module.startswith(f"xai_kedro.pipelines.{other}."))
            }  # fmt: skip
            if others:
                crossing[str(path.relative_to(root))] = sorted(others)
    assert not crossing, crossing
