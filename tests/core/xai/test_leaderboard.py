"""Per-image explainer scores: the XAI stage's own curves, Fidelity areas, any chunking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.core.tiny import tiny_backbone
from xai_kedro.core.data.preprocessing import normalise
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.inference import images_x255
from xai_kedro.core.xai.curves import ExplainedChunk, _ChunkScorer, _target_logprob
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.explainers import configured_explainers, get_explainer
from xai_kedro.core.xai.fidelity import fidelity_areas, fidelity_curves
from xai_kedro.core.xai.leaderboard import (
    SCORE_COLUMNS,
    LeaderboardConfig,
    sample_image_ids,
    score_explainers,
)
from xai_kedro.core.xai.settings import XAIConfig

EXPLAINERS = {"attention": None, "gradient_attention": None, "rise": None}
LEVELS = (0.125, 0.25, 0.5, 0.75)


def tiny_model(registers: int = 1) -> ViTClassifier:
    backbone = tiny_backbone(registers, 0, heads=4, init=0.25)
    model = ViTClassifier(backbone, num_classes=4).eval()
    with torch.no_grad():
        model.head.weight.mul_(8.0)
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 5)
    masks = [np.zeros((32, 32), dtype=np.uint8) for _ in range(5)]
    for m in masks:
        m[8:24, 8:24] = 1
    masks[2] = None
    return images, labels, masks


def test_scores_follow_the_xai_stage_and_fidelity(data):
    images, labels, masks = data
    model = tiny_model()
    config = XAIConfig(steps=4, target="predicted", keep_heatmap=True)
    scores = score_explainers(
        model, images, masks, configured_explainers(EXPLAINERS), config, LEVELS
    )
    assert list(scores.columns) == [*SCORE_COLUMNS, "row"]
    assert list(scores["explainer"]) == [e for e in EXPLAINERS for _ in range(5)]
    assert list(scores["row"]) == list(range(5)) * 3
    assert scores["seconds_per_image"].gt(0).all()
    # the object share is NaN exactly where the image has no mask
    assert scores["object_attention_share"].isna().tolist() == [i == 2 for i in range(5)] * 3
    # deletion and insertion are silver_xai's for the same settings
    for name in ("attention", "rise"):
        xai = compute_xai(model, images, labels, None, replace(config, explainer=name))
        mine = scores[scores["explainer"] == name]
        np.testing.assert_allclose(mine["deletion_auc"], xai["deletion_auc"], atol=1e-6)
        np.testing.assert_allclose(mine["insertion_auc"], xai["insertion_auc"], atol=1e-6)
    # the Fidelity areas are those of the explainer's own heatmap
    with torch.inference_mode():
        pixel_values = normalise(images_x255(torch.from_numpy(images), 32, torch.device("cpu")))
        tokens = model.embed(pixel_values)
        logits, heat = get_explainer("rise")(model, tokens)
        target = logits.argmax(dim=1)
        scorer = _ChunkScorer(model, config, torch.device("cpu"))
        chunk = ExplainedChunk(pixel_values, tokens, heat, target, _target_logprob(logits, target))
        curves = fidelity_curves(scorer, chunk, LEVELS)
    plus, minus = fidelity_areas(curves)
    rise = scores[scores["explainer"] == "rise"]
    np.testing.assert_allclose(rise["fidelity_plus_auc"], plus.numpy(), atol=1e-6)
    np.testing.assert_allclose(rise["fidelity_minus_auc"], minus.numpy(), atol=1e-6)
    assert rise["fidelity_plus_auc"].std() > 0


def test_scores_do_not_depend_on_the_chunking(data):
    images, _, masks = data
    model = tiny_model()
    explainers = configured_explainers(EXPLAINERS)
    whole = score_explainers(
        model,
        images,
        masks,
        explainers,
        XAIConfig(steps=4, batch_size=64, target="predicted"),
        LEVELS,
    )
    pieces = score_explainers(
        model,
        images,
        masks,
        explainers,
        XAIConfig(steps=4, batch_size=2, target="predicted"),
        LEVELS,
    )
    columns = [c for c in SCORE_COLUMNS if c != "seconds_per_image"]
    for c in columns:
        if c == "explainer":
            assert whole[c].tolist() == pieces[c].tolist()
        else:
            np.testing.assert_allclose(whole[c], pieces[c], atol=1e-6)


def test_bad_input_and_settings_are_clear_errors(data):
    images, labels, _ = data
    model = tiny_model()
    explainers = configured_explainers({"attention": None})
    predicted = XAIConfig(target="predicted")
    with pytest.raises(ValueError, match="4 masks for 5 images"):
        score_explainers(model, images, [None] * 4, explainers, predicted)
    with pytest.raises(ValueError, match="at least one explainer"):
        score_explainers(model, images, None, {}, predicted)
    with pytest.raises(ValueError, match="target must be 'predicted'"):
        score_explainers(model, images, None, explainers, XAIConfig(target="label"))
    with pytest.raises(ValueError, match=r"unknown setting xai_silver\.leaderboard\.images;"):
        LeaderboardConfig.from_params({"images": 3})
    with pytest.raises(ValueError, match="Unknown settings"):
        LeaderboardConfig.from_params({"explainers": {"rise": {"mask": 3}}})
    with pytest.raises(ValueError, match="images_per_adapter"):
        LeaderboardConfig.from_params({"images_per_adapter": 0})
    config = LeaderboardConfig.from_params(
        {"explainers": {"rollout": None}, "sparsities": [0.2, 0.4], "adapters": ["a"]}
    )
    assert config.sparsities == (0.2, 0.4) and config.adapters == ("a",)


def test_the_image_sample_is_stable_and_order_free():
    ids = [f"{i:04x}" for i in range(50)]
    sample = sample_image_ids(ids, 10, seed=3)
    assert len(sample) == 10 and set(sample) <= set(ids)
    assert sample_image_ids(list(reversed(ids)) + ids[:5], 10, seed=3) == sample
    assert sample_image_ids(ids, 10, seed=4) != sample
    assert sample_image_ids(ids, None) == sorted(ids)
    assert sample_image_ids(ids, 100) == sorted(ids)


def test_adapter_selection():
    zoo = ["r8", "probe", "r2", "r4"]
    assert LeaderboardConfig().select_adapters(zoo) == ["probe", "r2", "r4", "r8"]
    assert LeaderboardConfig(max_adapters=2).select_adapters(zoo) == ["probe", "r2"]
    chosen = LeaderboardConfig(adapters=("r8", "r4"), max_adapters=1).select_adapters(zoo)
    assert chosen == ["r4"]
    with pytest.raises(ValueError, match=r"leaderboard.adapters \['r16'\] are not in"):
        LeaderboardConfig(adapters=("r16", "r2")).select_adapters(zoo)
    with pytest.raises(ValueError, match="max_adapters"):
        LeaderboardConfig(max_adapters=0)
