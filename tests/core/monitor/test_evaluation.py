"""The benchmark's batches and summaries (core/monitor/evaluation.py) on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.monitor.evaluation import (
    CLEAN_CONDITION,
    Condition,
    auroc_summary,
    draw_images,
    drift_summary,
    estimator_summary,
    plan_batches,
)

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
            "error": [0.01, -0.03, 0.02],
        }
    )
    est = estimator_summary(methods).iloc[0]
    assert est["mae_points"] == pytest.approx(2.0)
    assert est["max_abs_error_points"] == pytest.approx(3.0)
    assert est["bias_points"] == pytest.approx(0.0)
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
    auroc = auroc_summary(batches).set_index("group")
    assert auroc.loc["clean", "risk_auroc"] == 0.6 and auroc.loc["clean", "n_batches"] == 1
    assert auroc.loc["background", "risk_auroc"] == pytest.approx(0.85)
