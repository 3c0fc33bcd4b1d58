"""Spark scratch space of ingestion runs: under the project's data folder, private to the run,
removed when the run ends, and what killed runs left behind is removed by the next one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from xai_kedro.spark.session import _private_local_dir

pytestmark = pytest.mark.integration

PRIVATE = 0o700
GONE_PID = 2**22 + 12345  # above Linux's pid_max limit: no such process


def test_local_runs_get_a_private_folder_and_stale_ones_are_removed(tmp_path):
    base = tmp_path / "data/spark_local"
    stale = base / f"run-{GONE_PID}"
    (stale / "blockmgr-x").mkdir(parents=True)
    (stale / "blockmgr-x" / "shuffle_0.data").write_bytes(b"image rows")
    alive = base / f"run-{os.getppid()}"  # another live process (pytest's parent)
    alive.mkdir()
    options = {"spark.master": "local[2]", "spark.local.dir": str(base)}
    run_dir = _private_local_dir(options)
    assert run_dir == base / f"run-{os.getpid()}"
    assert options["spark.local.dir"] == str(run_dir)
    assert stat.S_IMODE(run_dir.stat().st_mode) == PRIVATE
    assert not stale.exists() and alive.exists()
    cluster = {"spark.master": "spark://host:7077", "spark.local.dir": str(base)}
    assert _private_local_dir(cluster) is None and cluster["spark.local.dir"] == str(base)


def test_session_scratch_is_under_the_project_data_folder(spark):
    spark.range(100).repartition(3).count()  # a shuffle: Spark's block manager writes its files
    local_dir = Path(os.environ["SPARK_LOCAL_DIRS"])  # what the JVM was started with
    assert local_dir.parent.parts[-2:] == ("data", "spark_local")  # conf/base/spark.yml
    assert local_dir.name == f"run-{os.getpid()}" and local_dir.is_dir()
    assert stat.S_IMODE(local_dir.stat().st_mode) == PRIVATE
    assert list(local_dir.glob("blockmgr-*")), "Spark does not write into the run's folder"


def test_scratch_folder_is_removed_when_the_run_ends(tmp_path):
    script = textwrap.dedent(
        """
        import sys, yaml
        from xai_kedro.spark.session import configure_spark, get_spark
        conf = yaml.safe_load(open(sys.argv[1]))
        conf.update({"spark.master": "local[1]", "spark.local.dir": sys.argv[2]})
        configure_spark(conf)
        spark = get_spark()
        spark.range(1000).repartition(4).count()  # a shuffle writes into the scratch space
        import os, pathlib
        run_dir = pathlib.Path(os.environ["SPARK_LOCAL_DIRS"])
        print(len(list(run_dir.glob("blockmgr-*"))), run_dir)
        """
    )
    base = tmp_path / "scratch"
    done = subprocess.run(
        [sys.executable, "-c", script, str(PROJECT_ROOT / "conf/base/spark.yml"), str(base)],
        capture_output=True,
        text=True,
        check=True,
    )
    used, run_dir = done.stdout.strip().splitlines()[-1].split(" ", 1)
    run_dir = Path(run_dir)
    assert int(used) > 0  # the run wrote there
    assert run_dir.parent == base.resolve() and run_dir.name.startswith("run-")
    assert base.is_dir() and not run_dir.exists()
