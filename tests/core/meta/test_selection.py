"""Adapter selection on a toy zoo whose picks, regrets and gains are known by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.meta.selection import (
    CLEAN_SELECTION,
    SELECTION_COLUMNS,
    adapter_selection,
    pick,
    selection_outcome,
)

# four adapters (families a, a, b, c): true OOD accuracy, clean validation accuracy and two
# methods' predictions. Clean accuracy prefers a_s0 (0.95) whose OOD accuracy is only 0.60;
# "good" ranks like the truth, "bad" prefers c_s0 (0.50).
ADAPTERS = ["a_s0", "a_s1", "b_s0", "c_s0"]
FAMILIES = ["a", "a", "b", "c"]
MEASURED = [0.60, 0.62, 0.80, 0.50]
CLEAN = [0.95, 0.90, 0.85, 0.80]
PREDICTED = {"good": [0.55, 0.58, 0.70, 0.40], "bad": [0.70, 0.60, 0.65, 0.90]}


def _toy_estimation() -> pd.DataFrame:
    rows = []
    for method, pred in PREDICTED.items():
        for a, f, y, c, p in zip(ADAPTERS, FAMILIES, MEASURED, CLEAN, pred, strict=True):
            rows.append(
                {
                    "adapter_id": a,
                    "family": f,
                    "method": method,
                    "shift": "all",
                    "level": "overall",
                    "predicted_accuracy": p,
                    "measured_accuracy": y,
                    "clean_accuracy": c,
                }
            )
    return pd.DataFrame(rows)


def test_pick_takes_the_first_maximum_and_ignores_nan() -> None:
    assert pick([0.3, 0.7, 0.7]) == 1
    assert pick([np.nan, 0.2, 0.1]) == 1
    with pytest.raises(ValueError, match="no finite score"):
        pick([np.nan, np.nan])


def test_selection_outcome_by_hand() -> None:
    regret, gain = selection_outcome(PREDICTED["bad"], MEASURED, CLEAN)
    assert regret == pytest.approx(30.0)  # oracle 0.80 - picked c_s0 0.50
    assert gain == pytest.approx(-10.0)  # 0.50 - clean pick a_s0 0.60


def test_selection_table_on_a_toy_zoo() -> None:
    out = adapter_selection(_toy_estimation(), {"n_bootstrap": 200}, seed=0)
    assert list(out.columns) == list(SELECTION_COLUMNS)
    assert list(out["method"]) == ["good", "bad", CLEAN_SELECTION]
    t = out.set_index("method")
    assert t.loc["good", "picked_adapter"] == "b_s0"
    assert t.loc["good", "regret_points"] == pytest.approx(0.0)
    assert t.loc["good", "gain_vs_clean_points"] == pytest.approx(20.0)
    assert t.loc["bad", "picked_adapter"] == "c_s0"
    assert t.loc["bad", "regret_points"] == pytest.approx(30.0)
    assert t.loc["bad", "gain_vs_clean_points"] == pytest.approx(-10.0)
    clean = t.loc[CLEAN_SELECTION]
    assert clean["picked_adapter"] == "a_s0" and clean["regret_points"] == pytest.approx(20.0)
    assert clean["gain_vs_clean_points"] == pytest.approx(0.0)
    assert (t["oracle_adapter"] == "b_s0").all() and (t["oracle_accuracy"] == 0.80).all()
    # a method that ranks like the truth has zero regret on every resample
    assert t.loc["good", "regret_ci_low"] == 0.0 and t.loc["good", "regret_ci_high"] == 0.0
    assert t.loc["bad", "regret_ci_low"] <= 30.0 <= t.loc["bad", "regret_ci_high"]


def test_selection_skips_methods_with_missing_predictions() -> None:
    est = _toy_estimation()
    est.loc[(est.method == "bad") & (est.adapter_id == "b_s0"), "predicted_accuracy"] = np.nan
    t = adapter_selection(est, {"n_bootstrap": 50}).set_index("method")
    assert pd.isna(t.loc["bad", "picked_adapter"]) and t.loc["good", "picked_adapter"] == "b_s0"
    with pytest.raises(ValueError, match="clean_accuracy"):
        adapter_selection(est.assign(clean_accuracy=np.nan))
