"""The driver logs a job's progress while its tasks run: counts from executors (accumulators)
or from a driver-side probe, the active stages' tasks, and a closing line; failed and retried
task attempts and lost executors, unit-tested on recorded status snapshots."""

from __future__ import annotations

import logging
import re
import time
from types import SimpleNamespace

import pandas as pd
import pytest
from pyspark import SparkStageInfo

from xai_kedro.spark.progress import (
    FaultTally,
    configure_progress,
    counted,
    describe_tasks,
    is_cluster_master,
    track,
)

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


# ------------------------------------------------ faults, from recorded status snapshots
# Recorded on local[2,4] while a Python worker was killed in task 1 of a 4-task stage
# (stageId, currentAttemptId, name, numTasks, numActiveTasks, numCompletedTasks, numFailedTasks):
# the tracker counted 3 tasks running on 2 slots until the stage ended.
RECORDED = [
    SparkStageInfo(0, 0, "foreach", 4, 2, 0, 0),
    SparkStageInfo(0, 0, "foreach", 4, 3, 0, 0),
    SparkStageInfo(0, 0, "foreach", 4, 3, 0, 1),
    SparkStageInfo(0, 0, "foreach", 4, 3, 1, 1),
    SparkStageInfo(0, 0, "foreach", 4, 1, 3, 1),
]


def test_running_tasks_never_exceed_the_slots_or_the_unfinished_tasks():
    lines = [describe_tasks([info], slots=2) for info in RECORDED]
    assert lines == [
        "; tasks 0/4 done, 2 running",
        "; tasks 0/4 done, 2 running",
        "; tasks 0/4 done, 2 running",
        "; tasks 1/4 done, 2 running",
        "; tasks 3/4 done, 1 running",
    ]
    assert describe_tasks([SparkStageInfo(1, 0, "x", 4, 3, 3, 0)]) == "; tasks 3/4 done, 1 running"
    assert describe_tasks([None]) == ""
    two = [SparkStageInfo(1, 0, "a", 4, 1, 2, 0), SparkStageInfo(2, 0, "b", 6, 2, 1, 0)]
    assert describe_tasks(two, slots=8) == "; tasks 3/10 done, 3 running"


def test_failed_attempts_are_counted_per_stage():
    tally = FaultTally()
    said = []
    for info in RECORDED:
        tally.observe_stages([info])
        said.append(tally.describe([info.stageId]))
    assert said == ["", "", *["; 1 failed task attempt retried (stage 0: 1)"] * 3]
    tally.observe_stages([SparkStageInfo(3, 0, "later", 8, 2, 2, 2), None])
    assert tally.describe([3]) == "; 2 failed task attempts retried (stage 3: 2)"
    assert tally.describe() == "; 3 failed task attempts retried (stage 0: 1, stage 3: 2)"
    # a stale snapshot never lowers a count already seen
    tally.observe_stages([SparkStageInfo(3, 0, "later", 8, 2, 2, 1)])
    assert tally.describe([3]) == "; 2 failed task attempts retried (stage 3: 2)"


def test_an_executor_that_leaves_is_counted_lost_once():
    tally = FaultTally()
    snapshots = [
        ["driver:7077", "10.0.0.2:4001", "10.0.0.3:4001"],
        ["driver:7077", "10.0.0.3:4001"],  # the executor JVM on .2 was killed
        ["driver:7077", "10.0.0.3:4001", "10.0.0.2:4002"],  # its worker started a new one
        ["driver:7077", "10.0.0.3:4001", "10.0.0.2:4002"],
    ]
    said = []
    for ids in snapshots:
        tally.observe_executors(ids)
        said.append(tally.describe())
    assert said == ["", "; 1 executor lost", "; 1 executor lost", "; 1 executor lost"]
    tally.observe_executors(["driver:7077"])  # the whole worker .3 and the new executor gone
    assert tally.describe() == "; 3 executors lost"


class _FakeTracker:
    """A status tracker replaying a job whose stage retried one attempt and lost an executor."""

    def __init__(self) -> None:
        self.jobs = [0]
        self.executors = [("driver", 1), ("10.0.0.2", 4001), ("10.0.0.3", 4001)]

    def getJobIdsForGroup(self, group=None):  # noqa: N802 (Spark's names)
        return list(self.jobs)

    def getJobInfo(self, job_id):  # noqa: N802
        return SimpleNamespace(stageIds=[5] if job_id == 1 else [0])

    def getStageInfo(self, stage_id):  # noqa: N802
        return SparkStageInfo(stage_id, 0, "s", 4, 0, 4, 1 if stage_id == 5 else 7)

    def getExecutorInfos(self):  # noqa: N802
        return [SimpleNamespace(host=h, port=p) for h, p in self.executors]

    def getActiveStageIds(self):  # noqa: N802
        return []


class _FakeAccumulator:
    value = 0

    def add(self, count: int) -> None:
        self.value += count


def test_the_closing_line_reports_the_retries_and_lost_executors_of_the_block(caplog):
    tracker = _FakeTracker()
    context = SimpleNamespace(
        statusTracker=lambda: tracker, accumulator=lambda _: _FakeAccumulator(), master="local[2]"
    )
    with (
        caplog.at_level(logging.INFO, logger="xai_kedro.spark.progress"),
        track("scored", 4, "images", spark=SimpleNamespace(sparkContext=context)) as counter,
    ):
        tracker.jobs.append(1)  # the block's job: stage 5, one failed attempt
        tracker.executors.remove(("10.0.0.3", 4001))
        counter.add(4)
    line = caplog.records[-1].getMessage()
    assert line.startswith("scored: 4/4 images (100 %) in ")
    # stage 0 belongs to a job that ran before the block: its failures are not this block's
    assert line.endswith("; 1 failed task attempt retried (stage 5: 1); 1 executor lost")
