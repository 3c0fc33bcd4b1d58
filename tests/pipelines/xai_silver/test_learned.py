"""The amortised explainers' wiring in the xai_silver pipeline (no Spark session needed)."""

from __future__ import annotations

from xai_kedro.pipelines.xai_silver.learned import _with_learned, learned_in_use

ARTIFACTS = {"tve": "data/x/tve", "images": "data/x/images.npy", "dax_cache": "data/x/dax"}


def test_learned_explainers_in_use_are_found_in_every_place_they_can_be_named():
    assert learned_in_use({"explainers": {"attention": {}}}) == []
    assert learned_in_use({"explainers": {"dax": {}}, "profile_explainers": ["tve"]}) == [
        "tve",
        "dax",
    ]
    assert learned_in_use({"engine": {"explainer": "tve"}}) == ["tve"]


def test_the_silver_nodes_get_the_artifact_paths_and_keep_stated_settings():
    params = {
        "engine": {"explainer": "tve", "explainer_settings": {"max_batch_images": 8}},
        "explainers": {"dax": {"epochs": 3}, "occlusion": {}},
        "leaderboard": {"n_boot": 10},
    }
    out = _with_learned(params, ARTIFACTS)
    assert out["engine"]["explainer_settings"]["max_batch_images"] == 8
    assert out["engine"]["explainer_settings"]["weights"].endswith("data/x/tve")
    assert out["explainers"]["dax"]["epochs"] == 3
    assert out["explainers"]["dax"]["cache_dir"].endswith("data/x/dax")
    assert out["explainers"]["occlusion"] == {} and out["leaderboard"] == {"n_boot": 10}
    assert params["explainers"]["dax"] == {"epochs": 3}  # the input is left as it was
    assert _with_learned(params, {"explainers": []})["explainers"] == params["explainers"]
