"""The driver logs a job's progress while its tasks run: counts from executors (accumulators)
or from a driver-side probe, the active stages' tasks, and a closing line."""

from __future__ import annotations

import logging
import re
import time

import pandas as pd
import pytest

from xai_kedro.spark.progress import configure_progress, counted, is_cluster_master, track

TASKS = 4
TASK_SECONDS = 0.6
POLL_SECONDS = 0.1


@pytest.fixture
def fast_progress():
    configure_progress(interval_s=POLL_SECONDS)
    yield
    configure_progress(interval_s=15.0)


def test_cluster_masters():
    assert not is_cluster_master("local[*]") and not is_cluster_master("local")
    assert is_cluster_master("local-cluster[2,1,1024]") and is_cluster_master("spark://h:7077")
    with pytest.raises(ValueError, match="progress_interval_s"):
        configure_progress(interval_s=0)


@pytest.mark.integration
def test_counts_reach_the_log_while_tasks_run(spark, fast_progress, caplog):
    def slow_task(_):
        time.sleep(TASK_SECONDS)
        counter.add(1)

    with (
        caplog.at_level(logging.INFO, logger="xai_kedro.spark.progress"),
        track("test items", TASKS, "items done", spark=spark, periodic=True) as counter,
    ):
        spark.sparkContext.parallelize(range(TASKS), TASKS).foreach(slow_task)
    messages = [r.getMessage() for r in caplog.records]
    done = [int(m.group(1)) for m in map(re.compile(r"test items: (\d+)/4").match, messages) if m]
    # local[2] runs the four tasks in two waves: a line shows the first wave before the end
    assert any(0 < d < TASKS for d in done), messages
    assert any("tasks" in m and "running" in m for m in messages), messages
    assert messages[-1].startswith("test items: 4/4 items done (100 %) in ")


@pytest.mark.integration
def test_a_probe_and_the_counted_udf(spark, caplog):
    frame = spark.createDataFrame(pd.DataFrame({"x": range(10)})).repartition(3)
    with caplog.at_level(logging.INFO, logger="xai_kedro.spark.progress"):
        with track("rows", 10, "rows seen", spark=spark, periodic=False) as counter:
            out = frame.mapInPandas(counted(lambda batches: batches, counter), frame.schema)
            assert out.count() == 10
        assert counter.value == 10
        with track("probed", 3, "things", spark=spark, probe=lambda: 2, periodic=False) as probed:
            pass
    assert probed.value == 2
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == [
        "rows: 10/10 rows seen (100 %)",
        "probed: 2/3 things (67 %)",
    ]
