"""The GPU benchmark script runs end to end (tiny model, CPU) and prints its figures."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT
from xai_kedro.core.xai.explainers import EXPLAINERS


def test_engine_benchmark_prints_its_table():
    result = subprocess.run(
        # the compiled variant traced with dynamo but not code-generated: inductor's compile
        # is tested in tests/core/models/test_compiled.py
        [
            sys.executable,
            "-m",
            "benchmarks.engine_gpu",
            "--tiny",
            "--images",
            "8",
            "--compile-backend",
            "eager",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    table = result.stdout.split("## engine_gpu")[-1]
    for measure in ("(a) naive fwd-eq/s", "(b) engine fwd-eq/s", "(b) / (c)", "speed-up"):
        assert measure in table
    assert "compile failed" not in table

    def value(measure: str) -> float:
        line = next(line for line in table.splitlines() if measure in line)
        return float(line.split("|")[2].replace(",", ""))

    assert value("(b) engine fwd-eq/s") > 0
    assert value("(b) compiled engine fwd-eq/s") > 0
    compiled_calls = next(line for line in table.splitlines() if "forward_tokens calls" in line)
    assert int(compiled_calls.split("|")[2].split("/")[0]) > 0  # the graphs did run
    for name in EXPLAINERS:
        assert value(f"explainer {name}: ms per image") > 0
