"""Adapter selection on a toy zoo whose picks, regrets and gains are known by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.meta.adapters.estimation import BASELINE_CONSTANT
from xai_kedro.core.meta.adapters.selection import (
    CLEAN_SELECTION,
    RANDOM_SELECTION,
    SELECTION_COLUMNS,
    adapter_selection,
    pick,
    selection_outcome,
)
from xai_kedro.core.meta.adapters.settings import EstimationSettings

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
    out = adapter_selection(_toy_estimation(), EstimationSettings(n_bootstrap=200), seed=0)
    assert list(out.columns) == list(SELECTION_COLUMNS)
    assert list(out["method"]) == ["good", "bad", CLEAN_SELECTION, RANDOM_SELECTION]
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
    # a random pick: expected accuracy 0.63 (mean), regret 80 - 63, gain 63 - 60 (a_s0)
    rand = t.loc[RANDOM_SELECTION]
    assert pd.isna(rand["picked_adapter"]) and rand["picked_true_accuracy"] == pytest.approx(0.63)
    assert rand["regret_points"] == pytest.approx(17.0)
    assert rand["gain_vs_clean_points"] == pytest.approx(3.0)
    assert rand["regret_ci_low"] <= 17.0 <= rand["regret_ci_high"]


def test_the_constant_baseline_is_no_selection_rule() -> None:
    est = _toy_estimation()
    const = est[est.method == "good"].assign(method=BASELINE_CONSTANT)
    out = adapter_selection(pd.concat([est, const]), EstimationSettings(n_bootstrap=20))
    assert BASELINE_CONSTANT not in set(out["method"])


def test_selection_skips_methods_with_missing_predictions() -> None:
    est = _toy_estimation()
    est.loc[(est.method == "bad") & (est.adapter_id == "b_s0"), "predicted_accuracy"] = np.nan
    t = adapter_selection(est, EstimationSettings(n_bootstrap=50)).set_index("method")
    assert pd.isna(t.loc["bad", "picked_adapter"]) and t.loc["good", "picked_adapter"] == "b_s0"
    with pytest.raises(ValueError, match="clean_accuracy"):
        adapter_selection(est.assign(clean_accuracy=np.nan))


def _near_tie() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three one-adapter families; a beats b by one image of 200 (they disagree on 41), c is far
    behind; the method
    ranks a > b > c and the clean accuracy prefers c."""
    rng = np.random.default_rng(0)
    base = rng.random(200) < 0.7
    b = base.copy()
    b[np.flatnonzero(base)[:21]] = False  # b disagrees with a on 41 images, one net worse
    b[np.flatnonzero(~base)[:20]] = True
    c = base & (rng.random(200) < 0.5)
    correct = {"a_s0": base, "b_s0": b, "c_s0": c}
    ood = pd.DataFrame(
        [
            {
                "adapter_id": k,
                "image_id": f"i{i:03d}",
                "corruption": "noise",
                "severity": "1",
                "is_correct": bool(v),
            }
            for k, vals in correct.items()
            for i, v in enumerate(vals)
        ]
    )
    est = pd.DataFrame(
        {
            "adapter_id": list(correct),
            "family": ["a", "b", "c"],
            "method": "m",
            "shift": "all",
            "level": "overall",
            "predicted_accuracy": [0.9, 0.8, 0.7],
            "measured_accuracy": [float(np.mean(v)) for v in correct.values()],
            "clean_accuracy": [0.5, 0.6, 0.9],
        }
    )
    return est, ood


def test_two_way_intervals_see_the_test_set_noise_that_family_resampling_misses() -> None:
    est, ood = _near_tie()
    settings = EstimationSettings(n_bootstrap=400)
    families_only = adapter_selection(est, settings).set_index("method").loc["m"]
    assert families_only["regret_points"] == 0.0
    # every redrawn zoo keeps the pick's order right: the interval sits on its point
    assert families_only["regret_ci_low"] == 0.0 and families_only["regret_ci_high"] == 0.0
    both = adapter_selection(est, settings, silver_ood=ood).set_index("method")
    m = both.loc["m"]
    assert m["regret_points"] == 0.0 and m["picked_adapter"] == "a_s0"  # points unchanged
    # on redrawn test images b beats a about half the time, by ~3 points (41 disagreements of
    # 200): the upper end of the regret is a few points, not 0
    assert 1.0 < m["regret_ci_high"] < 10.0 and m["regret_ci_low"] == 0.0
    assert (
        both.loc[RANDOM_SELECTION, "regret_ci_high"] > both.loc[RANDOM_SELECTION, "regret_ci_low"]
    )
