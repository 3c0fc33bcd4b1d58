"""A batch through a tiny deployed model: the scoring answer plus logits, and Bronze embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.core.deploy.helpers import tiny_bundle
from xai_kedro.core.deploy.scoring import DeployedModel
from xai_kedro.core.models.embeddings import embed_images
from xai_kedro.core.monitor.profile import embed_pixels, frozen_backbone, profile_pixels, target_set


def test_profile_matches_scoring_and_embeddings_match_bronze(tmp_path: Path) -> None:
    deployed = DeployedModel.load(tiny_bundle(tmp_path), device="cpu")
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    profile = profile_pixels(deployed, images)
    scored = deployed.score_pixels(images)
    assert profile["pred"].tolist() == scored["class_id"].tolist()
    assert profile["class_name"].tolist() == scored["class_name"].tolist()
    np.testing.assert_array_equal(profile["failure_risk"], scored["failure_risk"])
    np.testing.assert_array_equal(profile["confidence"], scored["confidence"])
    logits = np.stack(profile["logits"])
    assert logits.shape == (5, 3)
    assert np.array_equal(logits.argmax(1), profile["pred"].to_numpy())
    assert "label" not in profile.columns and "is_correct" not in profile.columns
    target = target_set(profile)
    assert target.labels is None and target.logits.shape == (5, 3)

    backbone = frozen_backbone(deployed)
    emb = embed_pixels(deployed, backbone, images)
    ref = embed_images(backbone, images, input_size=32, device=torch.device("cpu"))
    np.testing.assert_array_equal(emb, ref)
    assert emb.shape == (5, 32)
