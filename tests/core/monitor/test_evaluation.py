"""The evaluation's batches, Gold table and summaries (core/monitor/evaluation.py) on hand-made
inputs, with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.meta.tables import MONITOR_TABLES
from xai_kedro.core.monitor.evaluation import (
    AUROC_COLUMNS,
    CLEAN_CONDITION,
    DRIFT_COLUMNS,
    ESTIMATOR_ERROR_COLUMNS,
    EVALUATION_COLUMNS,
    Condition,
    auroc_summary,
    draw_images,
    drift_summary,
    estimator_summary,
    evaluation_table,
    plan_batches,
)
from xai_kedro.core.monitor.gold import TABLE_COLUMNS, empty_tables

SHIFT = Condition("background", "novel_texture", "whole")


def test_draws_are_seeded_and_replace_only_past_the_split():
    a, replace_a = draw_images(10, 5, 0, seed=1)
    b, _ = draw_images(10, 5, 0, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not replace_a and len(set(a)) == 5
    c, replace_c = draw_images(10, 30, 0, seed=1)
    assert replace_c and len(c) == 30
    with pytest.raises(ValueError):
        draw_images(0, 5, 0, 0)


def test_plans_pair_the_same_images_across_kinds():
    plans = plan_batches([CLEAN_CONDITION, SHIFT], 10, [4], 1, seed=0)
    clean, shifted, mixed = plans
    assert [p.kind for p in plans] == ["clean", "shifted", "mixture"]
    assert [p.group for p in plans] == ["clean", "background", "mixture/background"]
    np.testing.assert_array_equal(clean.parts[0][1], shifted.parts[0][1])
    (c0, first), (c1, second) = mixed.parts
    assert (c0, c1) == (CLEAN_CONDITION, SHIFT)
    np.testing.assert_array_equal(np.concatenate([first, second]), clean.parts[0][1])


def test_summaries():
    methods = pd.DataFrame(
        {
            "method": ["ac"] * 3,
            "group": ["clean"] * 3,
            "size": [50] * 3,
            "error_points": [1.0, -3.0, 2.0],
            "raw_error_points": [1.0, -7.0, 2.0],  # one estimate was clipped
        }
    )
    est = estimator_summary(methods).iloc[0]
    assert est["mae_points"] == pytest.approx(2.0)
    assert est["max_abs_error_points"] == pytest.approx(3.0)
    assert est["bias_points"] == pytest.approx(0.0)
    assert est["raw_mae_points"] == pytest.approx(10.0 / 3)
    assert est["raw_max_abs_error_points"] == pytest.approx(7.0)
    assert tuple(estimator_summary(methods).columns) == ESTIMATOR_ERROR_COLUMNS
    batches = pd.DataFrame(
        {
            "kind": ["clean", "clean", "shifted", "shifted"],
            "group": ["clean", "clean", "background", "background"],
            "family": ["clean", "clean", "background", "background"],
            "shift": ["clean", "clean", "novel_texture", "novel_texture"],
            "severity": ["none", "none", "whole", "whole"],
            "size": [50] * 4,
            "drift": [False, True, True, True],
            "risk_auroc": [0.6, np.nan, 0.8, 0.9],
            "confidence_auroc": [0.5, np.nan, 0.7, 0.7],
        }
    )
    drift = drift_summary(batches).set_index("kind")["flagged_rate"]
    assert drift["clean"] == 0.5 and drift["shifted"] == 1.0
    assert tuple(drift_summary(batches).columns) == DRIFT_COLUMNS
    auroc = auroc_summary(batches).set_index("group")
    assert auroc.loc["clean", "risk_auroc"] == 0.6 and auroc.loc["clean", "n_batches"] == 1
    assert auroc.loc["background", "risk_auroc"] == pytest.approx(0.85)
    assert tuple(auroc_summary(batches).columns) == AUROC_COLUMNS


def test_evaluation_table_puts_each_method_row_beside_its_batch():
    batch = {"kind": "shifted", "group": "background", "family": "background",
             "shift": "novel_texture", "severity": "whole", "size": 50, "batch": 0,
             "with_replacement": False, "true_accuracy": 0.8, "p_value": 0.01, "drift": True,
             "n_drift_rows": 50, "risk_auroc": 0.7, "confidence_auroc": 0.6}  # fmt: skip
    batches = pd.DataFrame([batch, {**batch, "batch": 1, "true_accuracy": 0.6}])
    keys = {k: batch[k] for k in ("kind", "group", "shift", "severity", "size")}
    methods = pd.DataFrame(
        [
            {**keys, "batch": 1, "method": "mano", "estimated_accuracy": 1.0,
             "raw_estimate": 1.2, "error_points": 40.0, "raw_error_points": 60.0},
            {**keys, "batch": 0, "method": "ac", "estimated_accuracy": 0.9,
             "raw_estimate": 0.9, "error_points": 10.0, "raw_error_points": 10.0},
        ]
    )  # fmt: skip
    table = evaluation_table(batches, methods, "r4_qv")
    assert tuple(table.columns) == EVALUATION_COLUMNS and len(table) == 2
    assert table["batch"].tolist() == [0, 1] and set(table["adapter_id"]) == {"r4_qv"}
    assert table.set_index("method").loc["mano", "true_accuracy"] == 0.6
    empty = evaluation_table(pd.DataFrame(), pd.DataFrame(), "r4_qv")
    assert empty.empty and tuple(empty.columns) == EVALUATION_COLUMNS
    assert estimator_summary(pd.DataFrame()).empty and drift_summary(pd.DataFrame()).empty


def test_the_gold_tables_are_declared_once():
    assert tuple(TABLE_COLUMNS) == MONITOR_TABLES
    for name, table in empty_tables().items():
        assert table.empty and tuple(table.columns) == TABLE_COLUMNS[name]
