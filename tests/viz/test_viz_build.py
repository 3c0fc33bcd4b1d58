"""`kedro viz build` exports the project's lineage: five pipelines, a layer on every dataset,
and edges that follow ingestion -> adapter_training -> xai_silver / ood -> meta_learning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, load_conf
from xai_kedro.pipeline_registry import SEPARATE_RUNS

PIPELINES = [
    "ingestion", "adapter_training", "xai_silver", "ood", "meta_learning", "knowledge_injection",
    "deploy", "scoring", "monitor",
]  # fmt: skip
LAYERS = ["raw", "bronze", "models", "silver", "gold", "reporting"]
BUILD_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def viz_api(tmp_path_factory) -> Path:
    """The `build/api` folder of `kedro viz build` run offline in a copy of the project."""
    root = tmp_path_factory.mktemp("viz_project")
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    (root / "src").mkdir()  # the package itself is installed (editable)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir(exist_ok=True)
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    api = root / "build" / "api"
    assert result.returncode == 0 and (api / "main").is_file(), result.stdout + result.stderr
    return api


def _read(api: Path, *parts: str) -> dict:
    return json.loads(api.joinpath(*parts).read_text())


def _catalog_layers() -> dict[str, str | None]:
    catalog = load_conf("base", "catalog")
    return {
        name: ((entry.get("metadata") or {}).get("kedro-viz") or {}).get("layer")
        for name, entry in catalog.items()
        if isinstance(entry, dict)
    }


def test_the_five_pipelines_are_registered_with_their_own_nodes(viz_api):
    main = _read(viz_api, "main")
    assert {p["id"] for p in main["pipelines"]} == {"__default__", *PIPELINES}
    tasks = [n for n in main["nodes"] if n["type"] == "task"]  # main = the default run
    for name in PIPELINES:
        exported = _read(viz_api, "pipelines", name)
        assert exported["selected_pipeline"] == name
        own = {n["full_name"] for n in exported["nodes"] if n["type"] == "task"}
        in_main = {n["full_name"] for n in tasks if n["full_name"].startswith(f"{name}.")}
        assert own and all(n.startswith(f"{name}.") for n in own), name
        assert in_main == (set() if name in SEPARATE_RUNS else own), name
    assert len(tasks) == sum(
        len([n for n in _read(viz_api, "pipelines", p)["nodes"] if n["type"] == "task"])
        for p in PIPELINES
        if p not in SEPARATE_RUNS
    )


def test_every_dataset_has_its_catalog_layer(viz_api):
    main = _read(viz_api, "main")
    datasets = {
        n["name"]: n["layer"]
        for p in PIPELINES
        for n in _read(viz_api, "pipelines", p)["nodes"]
        if n["type"] == "data"
    }
    assert {n["name"] for n in main["nodes"] if n["type"] == "data"} <= set(datasets)
    catalog = _catalog_layers()
    # Every dataset a pipeline touches is a catalog entry (no silent MemoryDataset), and
    # every catalog entry is used by some pipeline.
    assert set(datasets) == set(catalog)
    missing = sorted(name for name, layer in datasets.items() if layer not in LAYERS)
    assert not missing, f"datasets without a known layer: {missing}"
    assert datasets == catalog
    assert {layer for layer in datasets.values()} == set(LAYERS)
    params = [n for n in main["nodes"] if n["type"] == "parameters"]
    assert params and all(n["name"].startswith("params:") for n in params)


def test_layers_sort_into_the_medallion_order(viz_api):
    """kedro-viz drops every layer band when the layer graph has a cycle (it then exports an
    empty list), so this fails when a dataset's layer comes before one of its inputs' layers."""
    assert _read(viz_api, "main")["layers"] == LAYERS


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("ingestion.ingest_images", "bronze_images"),
        ("bronze_images", "adapter_training.train_adapter_zoo"),
        ("backbone_manifest", "adapter_training.train_adapter_zoo"),
        ("adapter_training.train_adapter_zoo", "adapter_zoo"),
        ("adapter_zoo", "xai_silver.compute_silver_xai"),
        ("adapter_zoo", "ood.compute_silver_ood"),
        ("xai_silver.compute_silver_xai", "silver_xai"),
        ("ood.compute_silver_ood", "silver_ood"),
        ("silver_xai", "meta_learning.build_gold_tables"),
        ("silver_ood", "meta_learning.build_gold_tables"),
        ("meta_learning.build_gold_tables", "correlations"),
        ("meta_learning.write_report", "summary_report"),
    ],
)
def test_edges_follow_the_pipeline_flow(viz_api, source, target):
    main = _read(viz_api, "main")
    ids = {}
    for n in main["nodes"]:
        if n["type"] == "task":
            ids[n["full_name"]] = n["id"]
        elif n["type"] == "data":
            ids[n["name"]] = n["id"]
    assert source in ids and target in ids, (source, target)
    edges = {(e["source"], e["target"]) for e in main["edges"]}
    assert (ids[source], ids[target]) in edges


def test_no_edge_runs_backwards_through_the_pipelines(viz_api):
    """A task only reads datasets written by its own or an earlier pipeline."""
    main = _read(viz_api, "main")
    order = {name: i for i, name in enumerate(PIPELINES)}
    by_id = {n["id"]: n for n in main["nodes"]}
    producer = {}
    for e in main["edges"]:
        src, dst = by_id.get(e["source"]), by_id.get(e["target"])
        if src and dst and src["type"] == "task" and dst["type"] == "data":
            producer[dst["id"]] = order[src["full_name"].split(".", 1)[0]]
    for e in main["edges"]:
        src, dst = by_id.get(e["source"]), by_id.get(e["target"])
        if src and dst and src["type"] == "data" and dst["type"] == "task":
            consumer = order[dst["full_name"].split(".", 1)[0]]
            assert producer.get(src["id"], -1) <= consumer, (src["name"], dst["full_name"])
