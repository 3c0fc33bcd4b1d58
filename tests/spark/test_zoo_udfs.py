"""The Spark UDF path gives the same tables as the core engine called directly."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from xai_kedro.core.adapters import (
    AdapterConfig,
    attach_adapter,
    build_inference_model,
    read_adapter_files,
    save_adapter,
)
from xai_kedro.core.models.backbone import (
    build_backbone,
    freeze,
    save_backbone,
    small_backbone_config,
)
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.robustness.ood import OODConditions, evaluate_corruptions
from xai_kedro.core.robustness.presets import build_specs
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.silver_nodes import compute_silver_ood, compute_silver_xai

NUM_CLASSES = 3
SIZE = 32
EXECUTION = {"device": "cpu", "xai_partitions": 3, "ood_partitions": 2}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A saved tiny backbone and two adapters with non-trivial weights (probe + DoRA)."""
    root = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    backbone = freeze(
        build_backbone(
            small_backbone_config(
                image_size=SIZE, patch_size=8, hidden_size=32, num_layers=2, num_heads=2
            )
        )
    )
    save_backbone(backbone, root / "backbone")
    rows = []
    for cfg in (
        AdapterConfig.from_params({"adapter_id": "probe", "rank": 0, "alpha": 1}),
        AdapterConfig.from_params(
            {
                "adapter_id": "dora",
                "rank": 4,
                "alpha": "2r",
                "use_dora": True,
                "use_rslora": True,
                "target_roles": ["query", "value", "fc1", "fc2"],
            }
        ),
    ):
        model = attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), cfg)
        with torch.no_grad():  # LoRA B starts at zero: give the adapter an effect
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.2)
        save_adapter(model, cfg, root / cfg.adapter_id, {"config_hash": cfg.adapter_id})
        rows.append({"adapter_id": cfg.adapter_id, "path": str(root / cfg.adapter_id)})
    manifest = {"source": str(root / "backbone"), "local_files_only": True, "input_size": SIZE}
    return backbone, pd.DataFrame(rows), manifest


@pytest.fixture(scope="module")
def bronze(spark):
    rng = np.random.default_rng(1)
    n = 10
    pixels = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    masks = (rng.random((n, SIZE, SIZE)) > 0.7).astype(np.uint8)
    frame = pd.DataFrame(
        {
            "image_id": [f"img{i:02d}" for i in range(n)],
            "label": rng.integers(0, NUM_CLASSES, n).astype("int32"),
            "split": ["test"] * (n - 2) + ["train"] * 2,
            "height": SIZE,
            "width": SIZE,
            "pixels": [p.tobytes() for p in pixels],
            "mask": [m.tobytes() for m in masks],
        }
    )
    frame.loc[0, "mask"] = None  # a row without mask gets NaN object share
    schema = (
        "image_id string, label int, split string, height int, width int, "
        "pixels binary, mask binary"
    )
    return spark.createDataFrame(frame, schema=schema), frame


def _direct(zoo, frame, run):
    backbone, adapters, _ = zoo
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    pixels = np.stack([np.frombuffer(p, np.uint8).reshape(SIZE, SIZE, 3) for p in test["pixels"]])
    out = []
    for row in adapters.itertuples():
        model = build_inference_model(backbone, read_adapter_files(row.path), NUM_CLASSES)
        out.append(run(model, test, pixels).assign(adapter_id=row.adapter_id))
    return pd.concat(out, ignore_index=True)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, ignore_index=True)


def test_udf_silver_xai_equals_direct_engine(zoo, bronze):
    _, adapters, manifest = zoo
    frame_spark, frame = bronze
    params = {"split": "test", "engine": {"steps": 4, "keep_heatmap": True}}
    via_spark = compute_silver_xai(frame_spark, adapters, manifest, params, EXECUTION).toPandas()
    rerun = compute_silver_xai(frame_spark, adapters, manifest, params, EXECUTION).toPandas()
    pd.testing.assert_frame_equal(
        _sorted(via_spark, ["image_id", "adapter_id"]).drop(columns="heatmap"),
        _sorted(rerun, ["image_id", "adapter_id"]).drop(columns="heatmap"),
    )
    config = XAIConfig.from_params({"input_size": SIZE, **params["engine"]})

    def run(model, test, pixels):
        masks = [
            None if m is None else np.frombuffer(m, np.uint8).reshape(SIZE, SIZE)
            for m in test["mask"]
        ]
        return compute_xai(model, pixels, test["label"].to_numpy(), masks, config, "cpu").assign(
            image_id=test["image_id"].to_numpy()
        )

    direct = _direct(zoo, frame, run)
    keys = ["image_id", "adapter_id"]
    assert len(via_spark) == 8 * 2 and not via_spark.duplicated(keys).any()
    left, right = _sorted(via_spark, keys), _sorted(direct, keys)
    for column in ["label", "pred", "is_correct", "target_class"]:
        assert (left[column].to_numpy() == right[column].to_numpy()).all(), column
    numeric = ["confidence", "margin", "pred_entropy", "attn_entropy", "gini"]
    numeric += ["deletion_auc", "insertion_auc", "object_attention_share"]
    np.testing.assert_allclose(
        left[numeric].to_numpy(float), right[numeric].to_numpy(float), atol=1e-5
    )
    assert np.isnan(left.loc[left["image_id"] == "img00", "object_attention_share"]).all()
    np.testing.assert_allclose(
        np.stack(left["heatmap"]), np.stack(right["heatmap"]).astype(np.float32), atol=1e-5
    )
    # the adapters differ, so the table is not the same model twice
    by_adapter = left.groupby("adapter_id")["confidence"].mean()
    assert abs(by_adapter["probe"] - by_adapter["dora"]) > 1e-4


def test_udf_silver_ood_equals_direct_and_is_rerun_stable(zoo, bronze):
    _, adapters, manifest = zoo
    frame_spark, frame = bronze
    params = {"split": "test", "preset": "reference", "batch_size": 64, "base_seed": 0}
    first = compute_silver_ood(frame_spark, adapters, manifest, params, EXECUTION).toPandas()
    again = compute_silver_ood(frame_spark, adapters, manifest, params, EXECUTION).toPandas()
    specs = build_specs("reference")

    def run(model, test, pixels):
        conditions = OODConditions(specs, input_size=SIZE)
        labels, ids = test["label"].to_numpy(), test["image_id"].tolist()
        return evaluate_corruptions(model, pixels, labels, ids, conditions, device="cpu")

    direct = _direct(zoo, frame, run)
    keys = ["image_id", "adapter_id", "corruption", "severity"]
    assert len(first) == 8 * 2 * 9 and not first.duplicated(keys).any()
    pd.testing.assert_frame_equal(_sorted(first, keys), _sorted(again, keys))
    left, right = _sorted(first, keys), _sorted(direct, keys)
    assert (left["pred"].to_numpy() == right["pred"].to_numpy()).all()
    np.testing.assert_allclose(left["confidence"], right["confidence"], atol=1e-5)


def test_incomplete_or_duplicated_tables_are_refused(spark):
    from xai_kedro.spark.zoo import check_exactly_once

    good = spark.createDataFrame([("a", "x"), ("b", "x")], "image_id string, adapter_id string")
    assert check_exactly_once(good, ["image_id", "adapter_id"], 2, "t") is good
    duplicated = good.union(good.limit(1))
    with pytest.raises(RuntimeError, match="exactly one row per"):
        check_exactly_once(duplicated, ["image_id", "adapter_id"], 3, "t")
    with pytest.raises(RuntimeError, match=r"\(3 rows\) but got 2"):
        check_exactly_once(good, ["image_id", "adapter_id"], 3, "t")


def test_silver_schemas_follow_the_core_columns():
    from xai_kedro.core.models.inference import OOD_COLUMNS
    from xai_kedro.core.xai.columns import XAI_COLUMNS
    from xai_kedro.core.xai.metrics import XAI_METRICS
    from xai_kedro.spark.stages import ood_stage, xai_stage

    xai = xai_stage(XAIConfig()).schema
    assert xai.fieldNames() == ["image_id", "adapter_id", *XAI_COLUMNS]
    assert set(XAI_METRICS) <= set(xai.fieldNames())
    assert xai["object_attention_share"].nullable and not xai["gini"].nullable
    ood = ood_stage(OODConditions(build_specs("reference"), input_size=32, batch_size=8)).schema
    assert ood.fieldNames() == ["image_id", "adapter_id", "shift_family", *OOD_COLUMNS]


def test_a_bad_compile_setting_fails_when_the_udf_is_built():
    """`execution.compile` is checked on the driver, before any task starts."""
    from xai_kedro.spark.adapter_udfs import make_adapter_udf
    from xai_kedro.spark.stages import xai_stage

    stage = xai_stage(XAIConfig())
    make_adapter_udf(stage, None, {}, NUM_CLASSES, "cpu", {"enabled": "auto"})
    with pytest.raises(ValueError, match="compile.mode"):
        make_adapter_udf(stage, None, {}, NUM_CLASSES, "cpu", {"mode": "fastest"})
