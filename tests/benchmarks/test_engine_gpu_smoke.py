"""The GPU benchmark script runs end to end (tiny model, CPU) and prints its figures."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def test_engine_benchmark_prints_its_table():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.engine_gpu", "--tiny", "--images", "8"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    table = result.stdout.split("## engine_gpu")[-1]
    for measure in ("(a) naive fwd-eq/s", "(b) engine fwd-eq/s", "(b) / (c)", "speed-up"):
        assert measure in table
    engine_rate = next(line for line in table.splitlines() if "(b) engine" in line)
    assert float(engine_rate.split("|")[2].replace(",", "")) > 0
