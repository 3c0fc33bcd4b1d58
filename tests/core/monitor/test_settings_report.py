"""The monitor's settings block, one batch end to end on arrays, and its report."""

from __future__ import annotations

import numpy as np
import pytest

from xai_kedro.core.monitor.batch import monitor_batch
from xai_kedro.core.monitor.estimates import source_sets
from xai_kedro.core.monitor.report import batch_figure, batch_report
from xai_kedro.core.monitor.settings import MonitorSettings

from .test_estimates import _rows, _silver_source

BLOCK = {"source": {"kind": "image_folder", "root": "x"}, "model_dir": "m"}


def test_settings_defaults_and_errors() -> None:
    s = MonitorSettings.from_params(BLOCK)
    assert s.alpha == 0.05 and "nuclear_norm" in s.estimators
    with pytest.raises(ValueError, match="monitor: estimators: unknown label-free estimator"):
        MonitorSettings.from_params({**BLOCK, "estimators": ["nope"]})
    with pytest.raises(ValueError, match="monitor.*source.root"):
        MonitorSettings.from_params({**BLOCK, "source": {"kind": "image_folder"}})
    with pytest.raises(ValueError, match="typo"):
        MonitorSettings.from_params({**BLOCK, "typo": 1})


def test_one_batch_and_its_report() -> None:
    rng = np.random.default_rng(0)
    source, calibration = source_sets(_silver_source(rng), "a")
    profile = _rows(rng, 40, 2.0).drop(columns="label")
    profile["failure_risk"] = rng.uniform(size=40)
    profile["class_name"] = profile["pred"].map({0: "a", 1: "b", 2: "c"})
    profile["source_path"] = [f"/x/{i}.png" for i in range(40)]
    reference = rng.normal(size=(300, 6))
    shifted = rng.normal(1.0, 1.0, size=(40, 6))
    settings = MonitorSettings.from_params({**BLOCK, "reference_size": 100, "n_permutations": 99})
    estimates, drift = monitor_batch(profile, shifted, source, calibration, reference, settings)
    assert drift.drift and drift.n_reference == 100 and drift.n_batch == 40
    _, same = monitor_batch(profile, reference[:40], source, calibration, reference, settings)
    assert same.n_batch == 40
    text = batch_report(profile, estimates, drift.as_dict(), {"source": "/x"}, 2)
    assert "**DRIFT**" in text and "quarantined: 2" in text and "CBPE-style" in text
    assert "| Nuclear norm |" in text
    fig = batch_figure(profile, estimates)
    assert len(fig.axes) == 2


def test_evaluation_settings_default_off_and_checked_from_either_run() -> None:
    from xai_kedro.core.monitor.settings import MonitorEvaluationSettings

    off = MonitorEvaluationSettings.from_params(None)
    assert not off.enabled and off.sizes == (50, 200, 1000) and off.families == ()
    on = MonitorEvaluationSettings.from_params({"enabled": True, "sizes": [8], "families": ["x"]})
    assert on.sizes == (8,) and on.families == ("x",)
    with pytest.raises(ValueError, match="sizes"):
        MonitorEvaluationSettings.from_params({"sizes": [1]})
    with pytest.raises(ValueError, match=r"monitor\.evaluation\.typo"):
        MonitorSettings.from_params({**BLOCK, "evaluation": {"typo": 1}})
    assert MonitorSettings.from_params({**BLOCK, "evaluation": {"enabled": True}}).evaluation


def test_report_shows_the_raw_value_of_a_clipped_estimate() -> None:
    import pandas as pd

    from xai_kedro.core.monitor.report import estimates_markdown

    estimates = pd.DataFrame(
        {"label": ["MaNo", "AC"], "estimated_accuracy": [1.0, 0.8], "raw_estimate": [1.2, 0.8],
         "measured_mae_points": [2.7, np.nan], "measured_max_error_points": [9.0, np.nan],
         "status": ["ok", "ok"]}
    )  # fmt: skip
    lines = estimates_markdown(estimates)
    assert "| MaNo | 100.0% (raw 120.0%) | 2.7 | 9.0 | ok |" in lines
    assert "| AC | 80.0% | - | - | ok |" in lines
