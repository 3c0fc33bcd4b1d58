"""kedro-viz previews: every Spark table, the gallery and the report have one, and
scripts/check_viz.py (Playwright + the system Chromium) sees them render on a finished run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, TINY_DATA_ROOT, TINY_ENV, load_conf

CHECK_TIMEOUT_S = 600
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import check_viz  # noqa: E402

DATASETS = "xai_kedro.integration.datasets"


def _catalog() -> dict:
    return load_conf("base", "catalog")


def test_every_spark_table_and_the_reports_have_a_previewing_dataset():
    catalog = _catalog()
    spark_tables = [n for n, e in catalog.items() if "spark" in str(e.get("type", "")).lower()]
    assert spark_tables
    for name in spark_tables:
        assert catalog[name]["type"] == f"{DATASETS}.spark.SparkPreviewDataset", name
    assert catalog["failure_gallery"]["type"] == f"{DATASETS}.preview.GalleryDataset"
    assert catalog["summary_report"]["type"] == f"{DATASETS}.preview.ReportDataset"


def test_node_labels_match_raw_and_pretty_names():
    pattern = check_viz.label_pattern("bronze_images")
    assert pattern.match("bronze_images") and pattern.match("Bronze Images")
    assert not pattern.match("bronze_images_extra")
    assert check_viz.is_external("https://fonts.googleapis.com/css2")
    assert not check_viz.is_external("http://127.0.0.1:4141/api/main")
    assert not check_viz.is_external("data:image/png;base64,AAAA")


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("playwright") is None or shutil.which("chromium") is None,
    reason='needs the viz extra (pip install -e ".[viz]") and Debian\'s chromium',
)
def test_check_viz_sees_the_spark_table_and_plot_previews(tiny_run, tmp_path):
    screenshot = tmp_path / "viz.png"
    result = subprocess.run(
        [
            sys.executable, str(PROJECT_ROOT / "scripts/check_viz.py"),
            "--project", str(tiny_run), "--env", TINY_ENV,
            "--dataset", "silver_xai", "--plot", "correlations_plot",
            "--screenshot", str(screenshot),
        ],
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("kedro-viz check OK")
    assert screenshot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_viz_build_with_previews_serialises_every_dataset(tiny_run, tmp_path):
    """README's `kedro viz build --include-previews`: every preview must be JSON (a pandas
    table with an array column once failed the whole build)."""
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build", "--include-previews"],
        cwd=tiny_run,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "KEDRO_ENV": TINY_ENV},  # no --env
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Failed" not in output and "Unable to serialize" not in output, output
    nodes = list((tiny_run / "build" / "api" / "nodes").iterdir())
    assert any(f"{TINY_DATA_ROOT}/03_silver/injection_failures" in p.read_text() for p in nodes)
