"""Wall time of `kedro run` on the default environment, in a fresh copy of the project, and of
each separate run after it (`kedro run --pipelines knowledge_injection`).

python benchmarks/quickstart.py
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import ROOT, commit, print_table
from xai_kedro.pipeline_registry import SEPARATE_RUNS


def _timed_run(kedro: Path, project: Path, args: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [str(kedro), "run", *args], cwd=project,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}, capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-5000:], result.stderr[-5000:])
        raise SystemExit(f"kedro run {' '.join(args)} failed with exit code {result.returncode}")
    return seconds


def main() -> None:
    kedro = Path(sys.executable).with_name("kedro")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        for name in ("pyproject.toml", ".telemetry"):
            shutil.copy(ROOT / name, project / name)
        shutil.copytree(ROOT / "conf", project / "conf", symlinks=True)
        (project / "src").mkdir()
        (project / "data").mkdir()
        seconds = _timed_run(kedro, project, [])
        separate = {
            name: _timed_run(kedro, project, ["--pipelines", name])
            for name in sorted(SEPARATE_RUNS)
        }
        report = (project / "data/08_reporting/summary_report.md").read_text()
    print(report.split("\n## ")[0])
    print_table(
        "quickstart (kedro run, base env, from empty data/)",
        [
            ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"),
            ("commit", commit()),
            ("wall time (s)", f"{seconds:.0f}"),
            ("target", "600 s on 2 CPU cores"),
            *((f"then --pipelines {name} (s)", f"{t:.0f}") for name, t in separate.items()),
        ],
    )


if __name__ == "__main__":
    main()
