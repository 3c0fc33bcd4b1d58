"""TVE and DAX through the xai_silver nodes on Spark: pre-training node, artifacts reaching the
workers, leaderboard rows with their training cost, Gold cost and gap columns."""

from __future__ import annotations

import numpy as np
from pyspark.sql import functions as F

from tests.spark.test_zoo_udfs import EXECUTION, bronze, zoo  # noqa: F401
from xai_kedro.core.meta.explainers.faithfulness import POOLED, cost_column
from xai_kedro.pipelines.xai_silver.learned import pretrain_tve, with_learned_explainers
from xai_kedro.pipelines.xai_silver.nodes import build_explainer_faithfulness
from xai_kedro.spark.silver_nodes import compute_explainer_scores

EXPLAINERS = {"tve": {}, "dax": {"queries": 8, "epochs": 2}, "occlusion": {}}


def test_learned_explainers_reach_the_leaderboard_with_their_cost(zoo, bronze, tmp_path):  # noqa: F811
    _, adapters, manifest = zoo
    frame_spark = bronze[0].withColumn("content_hash", F.sha2(F.col("pixels"), 256))
    params = {
        "split": "test",
        "engine": {"steps": 4},
        "explainers": EXPLAINERS,
        "explainer_models": str(tmp_path / "explainers"),
        "tve": {"images": 8, "queries": 4, "epochs": 2, "hidden": 8, "heads": 2},
        "leaderboard": {
            "sparsities": [0.25, 0.75],
            "images_per_adapter": 5,  # 4 would miss label 2: run_zoo counts classes from them
            "n_boot": 20,
            "reference": "occlusion",
        },
    }
    learned = pretrain_tve(frame_spark, manifest, params, EXECUTION)
    assert learned["explainers"] == ["tve", "dax"] and learned["split"] == "train"
    assert learned["pretrain_images"] == 2 and learned["pretrain_seconds"] > 0
    again = pretrain_tve(frame_spark, manifest, params, EXECUTION)
    assert again == learned  # reused: same fingerprint, same measured seconds
    node = with_learned_explainers(compute_explainer_scores)
    rows = node(frame_spark, adapters, manifest, params, EXECUTION, learned).toPandas()
    assert len(rows) == 5 * len(adapters) * len(EXPLAINERS)
    tve, dax = rows[rows["explainer"] == "tve"], rows[rows["explainer"] == "dax"]
    assert (tve["backbone_training_seconds"] == learned["pretrain_seconds"]).all()
    assert (tve["adapter_training_seconds"] == 0).all()
    # DAX trains once per adapter (the cache on disk), whatever the partition
    assert (dax.groupby("adapter_id")["adapter_training_seconds"].nunique() == 1).all()
    assert (dax["adapter_training_seconds"] > 0).all()
    assert len(list((tmp_path / "explainers" / "dax").glob("dax_*.pt"))) == len(adapters)
    table, _ = build_explainer_faithfulness(_frame(rows), params)
    pooled = table[table["adapter_id"] == POOLED].set_index("explainer")
    assert pooled.loc["tve", cost_column(7)] > pooled.loc["tve", cost_column(48)]
    assert np.isfinite(pooled.loc["tve", "deletion_auc_gap"])
    assert pooled.loc["occlusion", "deletion_auc_gap"] == 0


def _frame(rows):
    from xai_kedro.spark.session import get_spark

    return get_spark().createDataFrame(rows)
