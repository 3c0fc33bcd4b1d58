"""Cluster runs: the `cluster` env has no loopback driver address, and a run on a real Spark
standalone cluster (master + 2 workers on 127.0.0.1, started and stopped by
scripts/local_cluster.sh) writes the same Silver and Gold tables as the local-mode run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT_ROOT, TINY_DATA_ROOT, TINY_ENV, make_tiny_project
from tests.test_conf import load
from xai_kedro.spark.session import _builder_options

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SCRIPT = PROJECT_ROOT / "scripts/local_cluster.sh"
CLUSTER_RUN_TIMEOUT_S = 2400
# Wall-clock measurements differ between any two runs; everything else must match.
TIMING_COLUMN = re.compile(r"(time|duration|seconds|elapsed)", re.IGNORECASE)
# Tolerance of float comparisons: float32 inference batched differently on the executors.
RTOL, ATOL = 1e-4, 1e-6


def test_cluster_env_has_no_loopback_address(monkeypatch):
    monkeypatch.delenv("SPARK_DRIVER_HOST", raising=False)
    monkeypatch.delenv("SPARK_MASTER_URL", raising=False)
    spark = load("cluster", "spark")
    loopback = {k: v for k, v in spark.items() if any(a in str(v) for a in LOOPBACK)}
    assert not loopback, loopback
    # unset, the inherited driver host is removed: Spark picks a reachable address itself
    assert spark["spark.driver.host"] is None
    assert "spark.driver.host" not in _builder_options(spark)
    monkeypatch.setenv("SPARK_DRIVER_HOST", "driver.cluster.example")
    assert _builder_options(load("cluster", "spark"))["spark.driver.host"] == (
        "driver.cluster.example"
    )


def test_local_cluster_env_is_the_base_experiment_on_a_loopback_master(monkeypatch):
    monkeypatch.delenv("SPARK_MASTER_URL", raising=False)
    spark = load("local_cluster", "spark")
    assert spark["spark.master"].startswith("spark://127.0.0.1:")
    assert spark["spark.driver.host"] == "127.0.0.1"  # the driver is on this machine too
    base, local_cluster = load("base", "parameters"), load("local_cluster", "parameters")
    assert {k: v for k, v in base.items() if k != "execution"} == {
        k: v for k, v in local_cluster.items() if k != "execution"
    }


def _cluster_project(root: Path) -> Path:
    """The tiny project with a `tiny_cluster` env: conf/tiny, local_cluster's Spark."""
    project = make_tiny_project(root)
    env = project / "conf" / "tiny_cluster"
    shutil.copytree(project / "conf" / TINY_ENV, env)
    execution = yaml.safe_load((env / "parameters_execution.yml").read_text())["execution"]
    cluster_execution = yaml.safe_load(
        (PROJECT_ROOT / "conf/local_cluster/parameters_execution.yml").read_text()
    )["execution"]
    params = {"execution": {**execution, **cluster_execution}}
    (env / "parameters_execution.yml").write_text(yaml.safe_dump(params, sort_keys=False))
    (env / "spark.yml").write_text((PROJECT_ROOT / "conf/local_cluster/spark.yml").read_text())
    return project


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Order-free form: timing columns dropped, arrays as tuples, rows sorted by every
    non-float column."""
    frame = frame.drop(columns=[c for c in frame.columns if TIMING_COLUMN.search(c)])
    frame = frame.reindex(sorted(frame.columns), axis=1)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
            frame[column] = frame[column].map(
                lambda v: None if v is None else tuple(np.asarray(v, dtype=float).round(5))
            )
    keys = [c for c in frame.columns if frame[c].dtype.kind not in "fc"]
    order = frame[keys].astype(str).agg("|".join, axis=1).argsort(kind="stable")
    return frame.iloc[order.to_numpy()].reset_index(drop=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _separate_run_files() -> set[str]:
    """File names of the tables only the separate runs (knowledge injection) write."""
    from xai_kedro.pipeline_registry import SEPARATE_RUNS, register_pipelines

    registry, catalog = register_pipelines(), load("base", "catalog")
    outputs = {d for name in SEPARATE_RUNS for d in registry[name].all_outputs()}
    files = {Path(catalog[d]["filepath"]).name for d in outputs if d in catalog}
    assert files, "the separate runs write no catalog table"
    return files


@pytest.mark.slow
@pytest.mark.timeout(CLUSTER_RUN_TIMEOUT_S)
def test_standalone_cluster_run_writes_the_local_mode_tables(tiny_run, tmp_path):
    project = _cluster_project(tmp_path / "cluster_project")
    cluster_dir = tmp_path / "cluster"
    environment = {
        **os.environ,
        "PROJECT_DIR": str(project),
        "KEDRO_ENV": "tiny_cluster",
        "CLUSTER_DIR": str(cluster_dir),
        "PYTHON": sys.executable,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
    }
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=CLUSTER_RUN_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "2 workers registered" in output
    stopped = re.search(r"stopped PIDs ([\d ]+)", output)
    assert stopped, output[-3000:]
    pids = [int(p) for p in stopped.group(1).split()]
    assert len(pids) == 3 and not any(_alive(p) for p in pids)
    # executors ran in the workers' directories under the cluster dir, not in the venv
    executor_logs = list(cluster_dir.glob("worker-*/work/app-*/*/stderr"))
    assert executor_logs, sorted(str(p) for p in cluster_dir.rglob("*"))[:50]

    # The script runs `kedro run`; the local tiny run also ran the separate runs after it.
    local, cluster = Path(tiny_run) / TINY_DATA_ROOT, project / TINY_DATA_ROOT
    separate = _separate_run_files()
    for layer in ("03_silver", "04_gold"):
        tables = sorted(p.name for p in (local / layer).glob("*.parquet") if p.name not in separate)
        assert tables and tables == sorted(p.name for p in (cluster / layer).glob("*.parquet"))
        for name in tables:
            expected = _canonical(pd.read_parquet(local / layer / name))
            actual = _canonical(pd.read_parquet(cluster / layer / name))
            pd.testing.assert_frame_equal(
                actual,
                expected,
                check_dtype=False,
                check_exact=False,
                rtol=RTOL,
                atol=ATOL,
                obj=f"{layer}/{name}",
            )
    # the driver reported the executors' progress through Kedro's logging (info.log: unwrapped)
    log = (project / "info.log").read_text()
    for job in ("adapter training", "silver_xai", "silver_ood"):
        assert f"xai_kedro.spark.progress - INFO - {job}: " in log, job
