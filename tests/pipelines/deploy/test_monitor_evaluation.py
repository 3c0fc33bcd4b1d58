"""The default tiny run evaluates the monitor after deploying (conf/tiny turns it on, small),
and the monitor run applies the per-batch regressor it fitted."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.pipelines.conftest import TINY_DATA_ROOT
from xai_kedro.core.meta.tables import MONITOR_TABLES
from xai_kedro.core.monitor.batch_regressor import BATCH_REGRESSOR
from xai_kedro.core.monitor.gold import TABLE_COLUMNS

pytestmark = pytest.mark.slow


def test_default_run_writes_the_monitor_evaluation(tiny_run):
    data = tiny_run / TINY_DATA_ROOT
    tables = {n: pd.read_parquet(data / f"04_gold/{n}.parquet") for n in MONITOR_TABLES}
    for name, table in tables.items():
        assert tuple(table.columns) == TABLE_COLUMNS[name] and len(table) > 0, name
    evaluation = tables["monitor_evaluation"]
    record = json.loads((data / "06_models/deployed_model.json").read_text())
    assert set(evaluation["adapter_id"]) == {record["adapter_id"]}
    assert set(evaluation["group"]) == {"clean", "imagenet_c", "mixture/imagenet_c"}
    assert {BATCH_REGRESSOR, "cbpe", "nuclear_norm"} <= set(evaluation["method"])
    assert evaluation["estimated_accuracy"].between(0, 1).all()
    drift = tables["monitor_drift_detection"]
    assert set(drift["kind"]) == {"clean", "shifted", "mixture"}
    regressor = json.loads((data / "06_models/monitor_batch_regressor.json").read_text())
    assert regressor["status"] == "ok" and regressor["measured_mae_points"] is not None


def test_monitor_run_reports_the_per_batch_regressor_and_raw_estimates(tiny_run):
    estimates = pd.read_parquet(
        tiny_run / TINY_DATA_ROOT / "08_reporting/monitor_estimates.parquet"
    )
    by = estimates.set_index("method")
    assert by.loc[BATCH_REGRESSOR, "status"] == "ok"
    assert by.loc[BATCH_REGRESSOR, "measured_mae_points"] >= 0
    ok = by[by["status"] == "ok"]
    assert ok["estimated_accuracy"].between(0, 1).all()
    assert (ok["estimated_accuracy"] == ok["raw_estimate"].clip(0, 1)).all()
