"""`silver_xai_explainers` through the Spark UDF equals the engine under each explainer, with its
settings from parameters; engine.explainer (silver_xai's) is not computed twice."""

from __future__ import annotations

import numpy as np
import pytest

from tests.spark.test_zoo_udfs import EXECUTION, SIZE, _direct, _sorted, bronze, zoo  # noqa: F401
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.silver_nodes import compute_explainer_profiles

METRICS = ["attn_entropy", "gini", "deletion_auc", "insertion_auc", "object_attention_share"]
PARAMS = {
    "split": "test",
    "engine": {"steps": 4, "explainer": "attention"},
    "profile_explainers": ["attention", "rollout", "rise"],
    "explainers": {"rise": {"masks": 8, "seed": 3}},
}


def test_profiles_equal_the_engine_under_each_explainer(zoo, bronze):  # noqa: F811
    _, adapters, manifest = zoo
    frame_spark, frame = bronze
    rows = compute_explainer_profiles(frame_spark, adapters, manifest, PARAMS, EXECUTION)
    rows = rows.toPandas()
    keys = ["explainer", "image_id", "adapter_id"]
    assert sorted(set(rows["explainer"])) == ["rise", "rollout"]  # attention is silver_xai
    assert len(rows) == 8 * 2 * 2 and not rows.duplicated(keys).any()
    for name, settings in {"rollout": {}, "rise": {"masks": 8, "seed": 3}}.items():
        config = XAIConfig(steps=4, input_size=SIZE, explainer=name, explainer_settings=settings)

        def run(model, test, pixels, config=config):
            return compute_xai(model, pixels, test["label"].to_numpy(), None, config).assign(
                image_id=test["image_id"].to_numpy()
            )

        direct = _sorted(_direct(zoo, frame, run), ["image_id", "adapter_id"])
        mine = _sorted(rows[rows["explainer"] == name], ["image_id", "adapter_id"])
        assert mine["target_class"].tolist() == direct["target_class"].tolist()
        numeric = METRICS[:4]
        np.testing.assert_allclose(
            mine[numeric].to_numpy(float), direct[numeric].to_numpy(float), atol=1e-5
        )
    rise, rollout = (
        _sorted(rows[rows["explainer"] == e], ["image_id", "adapter_id"])
        for e in ("rise", "rollout")
    )
    assert np.abs(rise["gini"].to_numpy() - rollout["gini"].to_numpy()).max() > 1e-4


def test_only_the_primary_gives_an_empty_table_and_a_bad_setting_fails(zoo, bronze):  # noqa: F811
    _, adapters, manifest = zoo
    frame_spark, _ = bronze
    params = {**PARAMS, "profile_explainers": ["attention"]}
    empty = compute_explainer_profiles(frame_spark, adapters, manifest, params, EXECUTION)
    assert empty.count() == 0 and "explainer" in empty.columns
    bad = {**PARAMS, "explainers": {"rise": {"mask_count": 8}}}
    with pytest.raises(ValueError, match="Unknown settings"):
        compute_explainer_profiles(frame_spark, adapters, manifest, bad, EXECUTION)
