"""The explainer leaderboard through the Spark UDF machinery equals the core scorer called
directly, and its Gold table follows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.spark.test_zoo_udfs import EXECUTION, NUM_CLASSES, SIZE, bronze, zoo  # noqa: F401
from xai_kedro.core.adapters import build_inference_model, read_adapter_files
from xai_kedro.core.meta.explainers.faithfulness import POOLED
from xai_kedro.core.xai.explainers import configured_explainers
from xai_kedro.core.xai.leaderboard import sample_image_ids, score_explainers
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.pipelines.xai_silver.nodes import build_explainer_faithfulness
from xai_kedro.spark.silver_nodes import compute_explainer_scores

EXPLAINERS = {"attention": None, "gradient_attention": None, "rise": {"masks": 16}}
PARAMS = {
    "split": "test",
    "engine": {"steps": 4},
    "explainers": EXPLAINERS,
    "leaderboard": {
        "sparsities": [0.25, 0.5, 0.75],
        "images_per_adapter": 5,
        "max_adapters": 1,
        "n_boot": 50,
    },
}
SCORES = ["deletion_auc", "insertion_auc", "fidelity_plus_auc", "fidelity_minus_auc"]


def test_leaderboard_udf_equals_direct_scores_and_fills_gold(zoo, bronze):  # noqa: F811
    backbone, adapters, manifest = zoo
    frame_spark, frame = bronze
    via_spark = compute_explainer_scores(frame_spark, adapters, manifest, PARAMS, EXECUTION)
    rows = via_spark.toPandas()
    chosen = sorted(adapters["adapter_id"])[:1]
    test_ids = frame.loc[frame["split"] == "test", "image_id"].tolist()
    sample = sample_image_ids(test_ids, 5, seed=0)
    assert sorted(set(rows["adapter_id"])) == chosen
    assert sorted(set(rows["image_id"])) == sample
    assert len(rows) == 5 * len(EXPLAINERS)
    # the same numbers as the core scorer on the same images, model and settings
    test = frame.set_index("image_id").loc[sample].reset_index()
    pixels = np.stack([np.frombuffer(p, np.uint8).reshape(SIZE, SIZE, 3) for p in test["pixels"]])
    masks = [
        None if m is None else np.frombuffer(m, np.uint8).reshape(SIZE, SIZE) for m in test["mask"]
    ]
    row = adapters.set_index("adapter_id").loc[chosen[0]]
    model = build_inference_model(backbone, read_adapter_files(row["path"]), NUM_CLASSES)
    config = XAIConfig(steps=4, target="predicted", input_size=SIZE)
    direct = score_explainers(
        model, pixels, masks, configured_explainers(EXPLAINERS), config, (0.25, 0.5, 0.75)
    )
    direct["image_id"] = test["image_id"].to_numpy()[direct["row"].to_numpy()]
    keys = ["explainer", "image_id"]
    left = rows.sort_values(keys, ignore_index=True)
    right = direct.sort_values(keys, ignore_index=True)
    assert left["explainer"].tolist() == right["explainer"].tolist()
    assert left["image_id"].tolist() == right["image_id"].tolist()
    columns = [*SCORES, "object_attention_share"]
    np.testing.assert_allclose(
        left[columns].to_numpy(float), right[columns].to_numpy(float), atol=1e-5
    )
    # Gold: one row per explainer for the adapter and for the pool, with intervals
    table, figure = build_explainer_faithfulness(via_spark, PARAMS)
    assert isinstance(table, pd.DataFrame) and figure is not None
    assert set(table["adapter_id"]) == {chosen[0], POOLED}
    assert sorted(table.loc[table["adapter_id"] == POOLED, "explainer"]) == sorted(EXPLAINERS)
    assert (table["n_images"] == 5).all()
    assert (table["deletion_auc_ci_low"] <= table["deletion_auc"] + 1e-12).all()
