"""scripts/compare_runs.py: row order and project paths do not count, a changed value does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import PROJECT_ROOT

spec = importlib.util.spec_from_file_location(
    "compare_runs", PROJECT_ROOT / "scripts" / "compare_runs.py"
)
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def _fake_run(root: Path, silver: pd.DataFrame, score: float, data_root: str = "data") -> Path:
    data = root / data_root
    for rel in compare_runs.KEYED_TABLES:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
    silver.to_parquet(data / "03_silver/silver_xai.parquet")
    (data / "04_gold").mkdir()
    pd.DataFrame({"model": ["rf"], "auc": [score]}).to_parquet(data / "04_gold/cmp.parquet")
    (data / "08_reporting").mkdir()
    (data / "08_reporting/summary_report.md").write_text("report\n")
    return root


def _silver(root: Path, order: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "image_id": ["a", "b", "c"],
            "adapter_id": ["x", "x", "y"],
            "gini": [0.1, 0.2, 0.3],
            "heatmap": [np.array([0.5, 0.5], dtype=np.float32)] * 3,
            "source": [str(root.resolve() / "data" / n) for n in "abc"],
        }
    )
    return frame.iloc[order].reset_index(drop=True)


def test_row_order_and_project_root_do_not_count(tmp_path):
    a = _fake_run(tmp_path / "a", _silver(tmp_path / "a", [0, 1, 2]), 0.7)
    b = _fake_run(tmp_path / "b", _silver(tmp_path / "b", [2, 0, 1]), 0.7)
    problems = compare_runs.compare_runs(a, b, (), 0.0)
    assert [p for p in problems if "silver_xai" in p or "04_gold" in p] == []
    assert any("silver_ood.parquet: missing" in p for p in problems)  # absent tables count


def test_a_changed_value_is_reported(tmp_path):
    a = _fake_run(tmp_path / "a", _silver(tmp_path / "a", [0, 1, 2]), 0.7)
    silver_b = _silver(tmp_path / "b", [0, 1, 2])
    silver_b.loc[1, "gini"] = 0.25
    b = _fake_run(tmp_path / "b", silver_b, 0.71)
    problems = compare_runs.compare_runs(a, b, (), 0.0)
    assert any("silver_xai.parquet.gini: 1 of 3 rows differ" in p for p in problems)
    assert any("cmp.parquet.auc" in p for p in problems)


def test_an_optional_table_counts_only_when_a_run_has_it(tmp_path):
    a = _fake_run(tmp_path / "a", _silver(tmp_path / "a", [0, 1, 2]), 0.7)
    b = _fake_run(tmp_path / "b", _silver(tmp_path / "b", [0, 1, 2]), 0.7)
    rel = "03_silver/silver_xai_explainers.parquet"
    assert not [p for p in compare_runs.compare_runs(a, b, (), 0.0) if rel in p]
    (b / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": ["a"], "adapter_id": ["x"], "explainer": ["rollout"]}).to_parquet(
        b / "data" / rel
    )
    assert any(f"{rel}: missing in a" in p for p in compare_runs.compare_runs(a, b, (), 0.0))


def test_data_root_compares_the_runs_of_another_env(tmp_path):
    """`--data-root data/zoo`: the zoo env's tables, not the base run's beside them."""
    a = _fake_run(tmp_path / "a", _silver(tmp_path / "a", [0, 1, 2]), 0.7, "data/zoo")
    b = _fake_run(tmp_path / "b", _silver(tmp_path / "b", [1, 2, 0]), 0.6, "data/zoo")
    _fake_run(tmp_path / "b", _silver(tmp_path / "b", [0, 1, 2]), 0.7)  # b's base run
    zoo = compare_runs.compare_runs(a, b, (), 0.0, data_root="data/zoo")
    assert any("cmp.parquet.auc" in p for p in zoo)
    assert not [p for p in zoo if "silver_xai.parquet" in p]
    assert compare_runs.main([str(a), str(b), "--data-root", "data/zoo"]) == 1


def test_a_timing_column_and_its_interval_are_ignored(tmp_path):
    a = _fake_run(tmp_path / "a", _silver(tmp_path / "a", [0, 1, 2]), 0.7)
    b = _fake_run(tmp_path / "b", _silver(tmp_path / "b", [0, 1, 2]), 0.7)
    for root, t in ((a, 0.03), (b, 0.04)):
        pd.DataFrame(
            {"explainer": ["rise"], "seconds_per_image": [t], "seconds_per_image_ci_low": [t]}
        ).to_parquet(root / "data/04_gold/board.parquet")
    assert not [
        p for p in compare_runs.compare_runs(a, b, ("seconds_per_image",), 0.0) if "board" in p
    ]
    assert [p for p in compare_runs.compare_runs(a, b, (), 0.0) if "board" in p]
