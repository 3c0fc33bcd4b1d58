"""The three Gold settings blocks against every environment's parameters, and their merges."""

from __future__ import annotations

from functools import reduce

import pytest

from tests.conftest import load_conf
from xai_kedro.core.common.settings import SettingsError
from xai_kedro.core.meta.adapters.settings import DEFAULT_REGRESSOR, EstimationSettings
from xai_kedro.core.meta.explainers.features import ExplainerFeatureSettings
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings

BLOCKS = (MetaLearnerSettings, EstimationSettings, ExplainerFeatureSettings)


@pytest.fixture(scope="module", params=["base", "paper", "cluster", "zoo", "local_cluster", "tiny"])
def parameters(request: pytest.FixtureRequest) -> dict:
    return load_conf(request.param, "parameters")


def test_every_environment_builds_every_block(parameters: dict) -> None:
    for cls in BLOCKS:
        block = reduce(lambda d, key: d.get(key) or {}, cls.PATH.split("."), parameters)
        settings = cls.from_params(block)
        assert cls.from_params(settings) is settings  # built once, passed down as it is


def test_regressor_merges_over_the_default_and_names_are_checked() -> None:
    s = EstimationSettings.from_params({"regressor": {"n_estimators": 7}, "percentiles": [5]})
    assert s.regressor == {**DEFAULT_REGRESSOR, "n_estimators": 7}
    assert s.percentiles == (5,)
    assert "mano" in EstimationSettings().estimators
    with pytest.raises(SettingsError, match="explainers must be a list"):
        ExplainerFeatureSettings.from_params({"explainers": "rollout"})
    with pytest.raises(SettingsError, match="model_names must name at least one model"):
        MetaLearnerSettings.from_params({"model_names": []})
