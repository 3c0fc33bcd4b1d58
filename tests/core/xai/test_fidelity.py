"""Fidelity+/- against sparsity against a plain one-image, one-level-per-forward reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.core.tiny import tiny_backbone
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.curves import (
    ExplainedChunk,
    _ChunkScorer,
    _target_logprob,
    separable_gaussian_blur,
)
from xai_kedro.core.xai.explainers import get_explainer
from xai_kedro.core.xai.fidelity import (
    check_sparsities,
    fidelity_areas,
    fidelity_curves,
    mean_level,
    sparsity_counts,
)
from xai_kedro.core.xai.settings import XAIConfig

N_PATCHES = 16
LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def tiny_model(registers: int = 0) -> ViTClassifier:
    backbone = tiny_backbone(registers, 0, heads=4, init=0.25)
    model = ViTClassifier(backbone, num_classes=4).eval()
    with torch.no_grad():
        model.head.weight.mul_(8.0)
    return model


@pytest.fixture
def pixels() -> torch.Tensor:
    torch.manual_seed(2)
    return torch.randn(5, 3, 32, 32)


def patch_mask(kept: list[int], patch: int = 8, grid: int = 4) -> torch.Tensor:
    m = torch.zeros(grid * grid)
    m[kept] = 1.0
    m = m.view(grid, grid).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
    return m[None, None]


def plain_prob(
    model, pixel_values, kept: list[int], target: int, perturbation: str, empty_input: str
) -> float:
    """One image, one perturbation: token drop of the other patches, or them set to 0 (mean);
    no patch left: the image's blurred copy, or the plain perturbation of every patch."""
    with torch.inference_mode():
        if not kept and empty_input == "blur":
            config = XAIConfig()
            blurred = separable_gaussian_blur(pixel_values, config.blur_sigma, config.blur_truncate)
            logits = model(blurred)
        elif perturbation == "token_drop":
            tokens = model.embed(pixel_values)
            p = model.n_prefix
            seq = torch.cat([tokens[:, :p], tokens[:, [p + i for i in sorted(kept)]]], dim=1)
            logits = model.forward_tokens(seq)
        else:
            logits = model(pixel_values * patch_mask(kept))
    return float(torch.softmax(logits, dim=-1)[0, target])


def plain_fidelity(model, pixel_values, heat, target, levels, perturbation, empty_input):
    """Fidelity+/- of one image, one level per forward, written out."""
    order = sorted(range(N_PATCHES), key=lambda i: (-float(heat[i]), i))
    args = (target, perturbation, empty_input)
    clean = plain_prob(model, pixel_values, list(range(N_PATCHES)), *args)
    plus, minus = [], []
    for s in levels:
        n = int(np.floor(s * N_PATCHES + 0.5))
        plus.append(clean - plain_prob(model, pixel_values, order[n:], *args))
        minus.append(clean - plain_prob(model, pixel_values, order[:n], *args))
    return np.array(plus), np.array(minus)


def batched(model, pixel_values, heat, config, levels):
    with torch.inference_mode():
        tokens = model.embed(pixel_values)
        logits = model.forward_tokens(tokens)
        target = logits.argmax(dim=1)
        lp = _target_logprob(logits, target)
        scorer = _ChunkScorer(model, config, torch.device("cpu"))
        chunk = ExplainedChunk(pixel_values, tokens, heat, target, lp)
        curves = fidelity_curves(scorer, chunk, levels)
    return curves, target


@pytest.mark.parametrize("empty_input", ["blur", "prefix_only"])
@pytest.mark.parametrize("perturbation", ["token_drop", "pixel"])
@pytest.mark.parametrize("registers", [0, 2])
def test_fidelity_curves_match_the_plain_reference(perturbation, registers, empty_input, pixels):
    model = tiny_model(registers)
    with torch.inference_mode():
        _, heat = get_explainer("attention")(model, model.embed(pixels))
    # a small token budget: several forwards per count
    config = XAIConfig(perturbation=perturbation, empty_input=empty_input, max_batch_tokens=40)
    curves, target = batched(model, pixels, heat, config, LEVELS)
    assert curves.plus.shape == curves.minus.shape == (5, len(LEVELS))
    expected_x = [int(np.floor(s * N_PATCHES + 0.5)) / N_PATCHES for s in LEVELS]
    np.testing.assert_allclose(curves.sparsity.numpy(), expected_x)
    for b in range(5):
        plus, minus = plain_fidelity(
            model, pixels[b : b + 1], heat[b], int(target[b]), LEVELS, perturbation, empty_input
        )
        np.testing.assert_allclose(curves.plus[b].numpy(), plus, atol=1e-5)
        np.testing.assert_allclose(curves.minus[b].numpy(), minus, atol=1e-5)
    # the endpoints: nothing removed / everything kept is the clean image
    assert curves.plus[:, 0].abs().max() < 1e-6 and curves.minus[:, -1].abs().max() < 1e-6
    assert curves.plus.abs().max() > 1e-2  # the curves carry signal


def test_fidelity_batched_equals_one_image_at_a_time(pixels):
    model = tiny_model(registers=1)
    with torch.inference_mode():
        _, heat = get_explainer("rollout")(model, model.embed(pixels))
    config = XAIConfig()
    whole, _ = batched(model, pixels, heat, config, LEVELS)
    for b in range(5):
        single, _ = batched(model, pixels[b : b + 1], heat[b : b + 1], config, LEVELS)
        torch.testing.assert_close(single.plus[0], whole.plus[b], atol=1e-6, rtol=0)
        torch.testing.assert_close(single.minus[0], whole.minus[b], atol=1e-6, rtol=0)


def test_areas_are_the_trapezoid_over_the_true_fractions():
    x = torch.tensor([0.125, 0.25, 0.75], dtype=torch.float64)
    y = torch.tensor([[0.2, 0.4, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    by_hand = (0.125 * (0.2 + 0.4) / 2 + 0.5 * (0.4 + 0.0) / 2) / 0.625
    np.testing.assert_allclose(mean_level(y, x).numpy(), [by_hand, 1.0])
    from xai_kedro.core.xai.fidelity import FidelityCurves

    plus, minus = fidelity_areas(FidelityCurves(x, y, 1.0 - y))
    np.testing.assert_allclose(plus.numpy(), [by_hand, 1.0])
    np.testing.assert_allclose(minus.numpy(), [1.0 - by_hand, 0.0])


def test_a_faithful_ranking_beats_its_reverse(pixels):
    """Occlusion's own ranking removes more probability than its reverse (Fidelity+ higher)."""
    model = tiny_model()
    with torch.inference_mode():
        _, heat = get_explainer("occlusion")(model, model.embed(pixels))
    config = XAIConfig()
    good, _ = batched(model, pixels, heat, config, (0.0625, 0.125, 0.25))
    bad, _ = batched(model, pixels, 1.0 - heat, config, (0.0625, 0.125, 0.25))
    assert fidelity_areas(good)[0].mean() > fidelity_areas(bad)[0].mean()


def test_bad_sparsities_are_clear_errors():
    with pytest.raises(ValueError, match="at least two"):
        check_sparsities([0.5])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        check_sparsities([0.5, 1.5])
    with pytest.raises(ValueError, match="increase strictly"):
        check_sparsities([0.5, 0.2])
    assert sparsity_counts(16, [0.1, 0.5, 0.97]) == [2, 8, 16]
    with pytest.raises(ValueError, match="one patch count"):
        mean_level(torch.ones(1, 2, dtype=torch.float64), torch.tensor([0.5, 0.5]))
