"""Progress of long Spark jobs, shown by the driver through Kedro's logging.

On a cluster the work happens in executors, whose logs the driver never sees; the driver only
knows what it can poll. `track()` gives a job a counter and, on a cluster master, a daemon
thread logs it every `interval_s` seconds when it changed, with the tasks of the active Spark
stages from the status tracker. A counter is fed either by executors (an accumulator: updates
reach the driver when a task ends, e.g. images scored per partition) or by a driver-side probe
(e.g. adapter directories completed on shared storage, which shows each adapter as it
finishes even when one task trains several). In local mode tqdm bars show progress and this
logs only the closing line.

Faults Spark survives are told too: each line counts the task attempts that failed and were
retried (per stage, from the status tracker's failed tasks) and the executors lost since the
block began (executors the tracker listed before and no longer does); the closing line sums
them over every stage the block ran. The tracker's per-stage counts are written lazily and can
briefly count a failed attempt as running, so running tasks are capped by what can run: the
stage's unfinished tasks and the cluster's task slots.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

_settings: dict[str, Any] = {"interval_s": 15.0, "periodic": None}


def configure_progress(interval_s: float | None = None, periodic: bool | None = None) -> None:
    """`interval_s` between progress lines; `periodic` forces them on/off (None: on clusters)."""
    if interval_s is not None:
        if float(interval_s) <= 0:
            raise ValueError(f"execution.progress_interval_s must be > 0, got {interval_s!r}")
        _settings["interval_s"] = float(interval_s)
    _settings["periodic"] = periodic


def is_cluster_master(master: str) -> bool:
    """Executors in other processes: standalone, YARN, Kubernetes, `local-cluster[...]`."""
    return not (master == "local" or master.startswith("local["))


class ProgressCounter:
    """A count of finished work items. Picklable: executors call `add` inside their tasks."""

    def __init__(self, accumulator: Any, label: str, total: int, unit: str) -> None:
        self._accumulator = accumulator
        self.label = label
        self.total = int(total)
        self.unit = unit
        self._probe: Callable[[], int] | None = None

    def add(self, count: int = 1) -> None:
        self._accumulator.add(int(count))

    @property
    def value(self) -> int:
        """Driver side only: the probe's count when there is one, else the accumulator's."""
        done = self._probe() if self._probe is not None else self._accumulator.value
        return min(int(done), self.total)  # a retried task may count twice

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_probe"] = None  # driver-side only
        return state

    def status(self) -> str:
        done = self.value
        share = 100.0 * done / self.total if self.total else 100.0
        return f"{self.label}: {done}/{self.total} {self.unit} ({share:.0f} %)"


def counted(udf: Callable[[Iterator[Any]], Iterator[Any]], counter: ProgressCounter):
    """A `mapInPandas` body that also adds the number of input rows of each batch to `counter`."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        def counting() -> Iterator[Any]:
            for batch in batches:
                yield batch
                counter.add(len(batch))

        yield from udf(counting())

    return run


@dataclass
class FaultTally:
    """What the Spark jobs of one tracked block survived, from status-tracker snapshots."""

    failed: dict[int, int] = field(default_factory=dict)  # stage id -> failed task attempts
    executors: set[str] = field(default_factory=set)  # every executor seen ("host:port")
    lost: set[str] = field(default_factory=set)  # seen, then gone
    # The reporter thread and the tracked block's own thread both record into it.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def observe_stages(self, infos: Iterable[Any]) -> None:
        """Record each stage's failed attempts (a SparkStageInfo-like object per stage)."""
        infos = [i for i in infos if i is not None]
        with self._lock:
            for info in infos:
                previous = self.failed.get(info.stageId, 0)
                self.failed[info.stageId] = max(previous, int(info.numFailedTasks))

    def observe_executors(self, executor_ids: Iterable[str]) -> None:
        """Record the executors listed now: one listed before and missing now was lost."""
        now = set(executor_ids)
        with self._lock:
            self.lost |= self.executors - now
            self.executors |= now

    def describe(self, stage_ids: Iterable[int] | None = None) -> str:
        """`; 2 failed task attempts retried (stage 3: 2); 1 executor lost`, or ''.

        ``stage_ids``: only these stages' failures (default: every stage observed)."""
        with self._lock:
            known = dict(self.failed)
            lost = len(self.lost)
        wanted = known if stage_ids is None else {i: known.get(i, 0) for i in stage_ids}
        failed = {stage: n for stage, n in sorted(wanted.items()) if n > 0}
        text = ""
        if failed:
            total = sum(failed.values())
            per_stage = ", ".join(f"stage {stage}: {n}" for stage, n in failed.items())
            text += f"; {total} failed task {_plural(total, 'attempt')} retried ({per_stage})"
        if lost:
            text += f"; {lost} {_plural(lost, 'executor')} lost"
        return text


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def describe_tasks(infos: Iterable[Any], slots: int | None = None) -> str:
    """`; tasks 3/8 done, 2 running` over the given active stages ('' when there is none).

    Running tasks are capped by each stage's unfinished tasks and by ``slots`` (the tasks the
    cluster can run at once): the tracker may still count a failed attempt as running."""
    infos = [i for i in infos if i is not None]
    if not infos:
        return ""
    total = sum(i.numTasks for i in infos)
    done = sum(min(i.numCompletedTasks, i.numTasks) for i in infos)
    running = sum(max(0, min(i.numActiveTasks, i.numTasks - i.numCompletedTasks)) for i in infos)
    if slots is not None:
        running = min(running, slots)
    return f"; tasks {done}/{total} done, {running} running"


def task_slots(spark_context: Any) -> int | None:
    """How many tasks the registered executors can run at once (None when unknown: an explicit
    `spark.default.parallelism` hides the core count)."""
    conf = spark_context.getConf()
    if conf.contains("spark.default.parallelism"):
        return None
    cpus = int(conf.get("spark.task.cpus", "1") or 1)
    return max(1, int(spark_context.defaultParallelism) // max(cpus, 1))


def executor_ids(tracker: Any) -> list[str]:
    """The executors (and the driver) the status tracker lists now, as `host:port`."""
    return [f"{e.host}:{e.port}" for e in tracker.getExecutorInfos()]


class _Reporter:
    """One daemon thread per driver, alive while some counter is tracked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracked: dict[int, tuple[ProgressCounter, float, Any, FaultTally]] = {}
        self._last: dict[int, str] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def add(
        self, counter: ProgressCounter, started: float, spark_context: Any, tally: FaultTally
    ) -> None:
        with self._lock:
            self._tracked[id(counter)] = (counter, started, spark_context, tally)
            if self._thread is None or not self._thread.is_alive():
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="spark-progress", daemon=True
                )
                self._thread.start()

    def remove(self, counter: ProgressCounter) -> None:
        with self._lock:
            self._tracked.pop(id(counter), None)
            self._last.pop(id(counter), None)
            if not self._tracked:
                self._wake.set()

    def _loop(self) -> None:
        while not self._wake.wait(_settings["interval_s"]):
            with self._lock:
                tracked = list(self._tracked.items())
            if not tracked:
                return
            for key, (counter, started, spark_context, tally) in tracked:
                # A line only when something moved: the count, the stages' tasks or faults.
                status = f"{counter.status()}{stage_tasks(spark_context, tally)}"
                if self._last.get(key) != status:
                    self._last[key] = status
                    logger.info("%s after %.0f s", status, time.monotonic() - started)


def stage_tasks(spark_context: Any, tally: FaultTally | None = None) -> str:
    """`; tasks 3/8 done, 2 running` over the active stages ('' when none is active), then the
    active stages' retried attempts and the executors lost so far (recorded in ``tally``)."""
    tracker = spark_context.statusTracker()
    infos = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
    infos = [i for i in infos if i is not None]
    tally = tally if tally is not None else FaultTally()
    tally.observe_stages(infos)
    tally.observe_executors(executor_ids(tracker))
    text = describe_tasks(infos, task_slots(spark_context)) if infos else ""
    return text + tally.describe([i.stageId for i in infos])


def _jobs(tracker: Any) -> set[int]:
    return set(tracker.getJobIdsForGroup())


def _final_faults(spark_context: Any, jobs_before: set[int], tally: FaultTally) -> str:
    """Every stage of the jobs run since ``jobs_before`` and the executors now: the faults."""
    tracker = spark_context.statusTracker()
    for job_id in sorted(_jobs(tracker) - jobs_before):
        job = tracker.getJobInfo(job_id)
        if job is not None:
            tally.observe_stages(tracker.getStageInfo(int(s)) for s in job.stageIds)
    tally.observe_executors(executor_ids(tracker))
    return tally.describe()


_reporter = _Reporter()


@contextlib.contextmanager
def track(
    label: str,
    total: int,
    unit: str,
    *,
    spark: Any = None,
    probe: Callable[[], int] | None = None,
    periodic: bool | None = None,
) -> Iterator[ProgressCounter]:
    """Count `total` items of `unit` while the block runs Spark jobs; log progress lines.

    `probe` (driver side, cheap) replaces the accumulator as the source of the count.
    `periodic` overrides `configure_progress` (None: periodic lines on cluster masters only).
    """
    if spark is None:
        from xai_kedro.spark.session import get_spark

        spark = get_spark()
    spark_context = spark.sparkContext
    counter = ProgressCounter(spark_context.accumulator(0), label, total, unit)
    counter._probe = probe
    if periodic is None:
        periodic = _settings["periodic"]
    if periodic is None:
        periodic = is_cluster_master(spark_context.master)
    started = time.monotonic()
    tracker = spark_context.statusTracker()
    jobs_before, tally = _jobs(tracker), FaultTally()
    tally.observe_executors(executor_ids(tracker))
    if periodic:
        _reporter.add(counter, started, spark_context, tally)
    try:
        yield counter
    finally:
        if periodic:
            _reporter.remove(counter)
        faults = _final_faults(spark_context, jobs_before, tally)
        logger.info("%s in %.0f s%s", counter.status(), time.monotonic() - started, faults)
