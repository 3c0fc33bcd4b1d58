"""The notebooks run top to bottom in a fresh kernel on the tiny run's outputs, as in
`kedro jupyter lab`: the kernel starts in <project>/notebooks and finds everything itself."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT, TINY_DATA_ROOT, TINY_ENV
from xai_kedro.core.meta.tables import GOLD_TABLES

NOTEBOOKS = ["01_analysis.ipynb", "02_failure_gallery.ipynb"]
CELL_TIMEOUT_S = 300


def _kernel_name() -> str:
    """The venv's python3 kernel (ipykernel's own spec, or jupyter_client's native fallback)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        from ipykernel.kernelspec import install

        install(user=True)
    return "python3"


def _execute(path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run every cell with cwd = the notebook's folder; a failing cell raises with its trace."""
    from nbclient import NotebookClient

    monkeypatch.setenv("KEDRO_ENV", TINY_ENV)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=_kernel_name(),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


# What a terminal would show but a saved notebook must not: colour codes and JVM start-up lines.
TERMINAL_NOISE = re.compile(r"\x1b|Using incubator modules|log4j|Setting default log level")


def _raw_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for output in _outputs(notebook):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            data = output.get("data", {})
            parts += [data.get(k, "") for k in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(parts)


def _text(notebook: nbformat.NotebookNode) -> str:
    """The outputs' text; fails on terminal colour codes or JVM banners in any output."""
    raw = _raw_text(notebook)
    noise = sorted({m.group(0) for m in TERMINAL_NOISE.finditer(raw)})
    assert not noise, f"terminal output in the notebook: {noise}"
    return raw


def _images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(notebook))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_have_no_outputs(name):
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / name, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    # The first cell loads Kedro only where `kedro jupyter` has not done it already.
    assert 'if "catalog" not in globals():' in code[0].source
    assert "        %load_ext kedro.ipython" in code[0].source


@pytest.fixture(scope="module")
def notebook_project(tiny_run) -> Path:
    """The tiny run with the repository's notebooks copied into its notebooks/ folder."""
    folder = tiny_run / "notebooks"
    folder.mkdir(exist_ok=True)
    for name in NOTEBOOKS:
        shutil.copy(PROJECT_ROOT / "notebooks" / name, folder / name)
    return tiny_run


@pytest.mark.slow
def test_analysis_notebook_runs_and_reports_the_gold_numbers(notebook_project, monkeypatch):
    notebook = _execute(notebook_project / "notebooks" / NOTEBOOKS[0], monkeypatch)
    text = _text(notebook)
    gold = notebook_project / TINY_DATA_ROOT / "04_gold"
    # Found the tiny project from notebooks/ and took the environment from KEDRO_ENV.
    assert f"Kedro env: {TINY_ENV} | project: {notebook_project}" in text
    assert f"Loaded {len(GOLD_TABLES)} Gold layer datasets" in text
    for column in ["pearson_r", "cohens_d", "roc_auc", "grouped_oof_auc", "perm_importance",
                   "max_drop_pct", "picked_true_accuracy", "ood_accuracy", "auroc", "aurc"]:  # fmt: skip
        assert column in text, column
    # Sentences are computed from the tables, not typed in.
    comparison = pd.read_parquet(gold / "classifier_comparison.parquet")
    xai = comparison[comparison["feature_set"] == "xai"]
    best = xai.loc[xai["roc_auc"].idxmax()]
    assert f"Best model (holdout): {best['model']} (ROC-AUC: {best['roc_auc']:.3f})" in text
    summary = pd.read_parquet(gold / "adapter_summary.parquet")
    top = summary.loc[summary["accuracy"].idxmax()]
    assert f"Best OOD robustness: {top['adapter_id']} " in text
    report = (notebook_project / TINY_DATA_ROOT / "08_reporting/summary_report.md").read_text()
    markdown = [o["data"]["text/markdown"] for o in _outputs(notebook)
                if "text/markdown" in o.get("data", {})]  # fmt: skip
    assert markdown == [report]
    assert _images(notebook) >= 10  # training curves, histograms, degradation, ROC, ...


@pytest.mark.slow
def test_failure_gallery_notebook_shows_gallery_and_heatmaps(notebook_project, spark, monkeypatch):
    notebook = _execute(notebook_project / "notebooks" / NOTEBOOKS[1], monkeypatch)
    text = _text(notebook)
    pages = sorted((notebook_project / TINY_DATA_ROOT / "08_reporting/failure_gallery").iterdir())
    assert pages
    assert f"{len(pages)} gallery page(s)" in text
    silver = spark.read.parquet(
        str(notebook_project / TINY_DATA_ROOT / "03_silver/silver_xai.parquet")
    )
    mistakes = silver.filter(~silver["is_correct"]).groupBy("adapter_id").count().toPandas()
    zoo = pd.read_parquet(notebook_project / TINY_DATA_ROOT / "06_models/adapter_zoo.parquet")
    counts = mistakes.set_index("adapter_id")["count"].reindex(zoo["adapter_id"], fill_value=0)
    assert f"-> showing {counts.idxmax()}" in text
    assert "deletion_auc" in text and "insertion_auc" in text
    # One image per gallery page, the per-adapter grid, the cross-adapter row, the patch grid.
    assert _images(notebook) == len(pages) + 3
