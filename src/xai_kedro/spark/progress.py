"""Progress of long Spark jobs, shown by the driver through Kedro's logging.

On a cluster the work happens in executors, whose logs the driver never sees; the driver only
knows what it can poll. `track()` gives a job a counter and, on a cluster master, a daemon
thread logs it every `interval_s` seconds when it changed, with the tasks of the active Spark
stages from the status tracker. A counter is fed either by executors (an accumulator: updates
reach the driver when a task ends, e.g. images scored per partition) or by a driver-side probe
(e.g. adapter directories completed on shared storage, which shows each adapter as it
finishes even when one task trains several). In local mode tqdm bars show progress and this
logs only the closing line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
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


class _Reporter:
    """One daemon thread per driver, alive while some counter is tracked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracked: dict[int, tuple[ProgressCounter, float, Any]] = {}
        self._last: dict[int, str] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def add(self, counter: ProgressCounter, started: float, spark_context: Any) -> None:
        with self._lock:
            self._tracked[id(counter)] = (counter, started, spark_context)
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
            for key, (counter, started, spark_context) in tracked:
                # A line only when something moved: the count or the stages' tasks.
                status = f"{counter.status()}{stage_tasks(spark_context)}"
                if self._last.get(key) != status:
                    self._last[key] = status
                    logger.info("%s after %.0f s", status, time.monotonic() - started)


def stage_tasks(spark_context: Any) -> str:
    """`; tasks 3/8 done, 2 running` over the active stages ('' when none is active)."""
    tracker = spark_context.statusTracker()
    infos = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
    infos = [i for i in infos if i is not None]
    if not infos:
        return ""
    total = sum(i.numTasks for i in infos)
    done = sum(i.numCompletedTasks for i in infos)
    running = sum(i.numActiveTasks for i in infos)
    return f"; tasks {done}/{total} done, {running} running"


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
    if periodic:
        _reporter.add(counter, started, spark_context)
    try:
        yield counter
    finally:
        if periodic:
            _reporter.remove(counter)
        logger.info("%s in %.0f s", counter.status(), time.monotonic() - started)
