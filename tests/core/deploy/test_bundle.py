"""The bundle round-trips, and the deployed model scores images as the XAI engine does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.core.deploy.helpers import CLASS_NAMES, png_bytes, request_frame, tiny_bundle
from xai_kedro.core.adapters import build_inference_model
from xai_kedro.core.data.decoding import decode_image
from xai_kedro.core.deploy.bundle import read_bundle
from xai_kedro.core.deploy.scoring import DeployedModel
from xai_kedro.core.models.backbone import load_backbone
from xai_kedro.core.xai.engine import compute_xai


def test_bundle_round_trip_copies_or_declares_the_backbone(tmp_path):
    copied = read_bundle(tiny_bundle(tmp_path / "a"))
    assert copied.adapter_id == "r4" and copied.class_names == CLASS_NAMES
    assert copied.backbone_dir == copied.directory / "backbone"
    assert copied.decode.storage_size == 32 and copied.xai.steps == 2
    assert {"adapter_model.safetensors", "head.safetensors"} <= set(copied.adapter_files)
    assert not list(copied.directory.rglob("*.pkl"))
    declared = read_bundle(tiny_bundle(tmp_path / "b", copy_backbone=False))
    assert declared.backbone_dir == (tmp_path / "b" / "backbone").resolve()
    assert not (declared.directory / "backbone").exists()
    meta = json.loads((declared.directory / "bundle.json").read_text())
    assert meta["backbone"] == {"copied": False, "dir": str(declared.backbone_dir)}


def test_deployed_model_scores_as_the_pipeline_does(tmp_path):
    bundle = read_bundle(tiny_bundle(tmp_path))
    deployed = DeployedModel(bundle, "cpu")
    images = [png_bytes(i) for i in range(3)]
    answer = deployed.predict_frame(request_frame(*images))
    # the pipeline's path: decode to the storage size, XAI profile, predictor on its columns
    pixels = np.stack([decode_image(b, 32, 16).pixels for b in images])
    model = build_inference_model(
        load_backbone(str(bundle.backbone_dir)), bundle.adapter_files, len(CLASS_NAMES)
    )
    profile = compute_xai(model, pixels, np.zeros(3, dtype=int), None, bundle.xai, "cpu")
    assert list(answer["class_id"]) == list(profile["pred"])
    assert list(answer["class_name"]) == [CLASS_NAMES[i] for i in profile["pred"]]
    np.testing.assert_allclose(answer["confidence"], profile["confidence"], rtol=1e-6)
    np.testing.assert_allclose(
        answer["failure_risk"], bundle.predictor.frame_risk(profile), rtol=1e-6
    )
    assert answer["error"].isna().all()


def test_unreadable_rows_get_an_error_and_the_others_a_score(tmp_path):
    deployed = DeployedModel.load(tiny_bundle(tmp_path), "cpu")
    frame = request_frame(png_bytes(0), b"not an image")
    frame.loc[2, "image"] = None
    frame["path"] = [None, None, str(tmp_path / "missing.png")]
    answer = deployed.predict_frame(frame, heatmap=True)
    assert answer.loc[0, "error"] is None and answer.loc[0, "class_name"] in CLASS_NAMES
    assert len(answer.loc[0, "heatmap"]) == 16
    assert "not_an_image" in answer.loc[1, "error"]
    assert "FileNotFoundError" in answer.loc[2, "error"]
    assert answer.loc[1:, "failure_risk"].isna().all()
    with pytest.raises(ValueError, match="`image`"):
        deployed.predict_frame(frame.rename(columns={"image": "x", "path": "y"}))


def test_backbone_files_carry_the_preprocessor_config(tmp_path):
    from xai_kedro.core.deploy.bundle import backbone_files

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert [f.name for f in backbone_files(tmp_path)] == ["config.json", "model.safetensors"]
    (tmp_path / "preprocessor_config.json").write_text("{}")
    assert backbone_files(tmp_path)[-1].name == "preprocessor_config.json"
