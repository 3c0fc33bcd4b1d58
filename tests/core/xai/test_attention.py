"""Direct attention heatmaps against the eager `output_attentions` reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.core.tiny import fp32_on_cuda, needs_cuda, tiny_backbone
from tests.core.xai.learned_artifacts import learned_settings
from xai_kedro.core.models.classifier import ViTClassifier, role_module
from xai_kedro.core.xai import references
from xai_kedro.core.xai.attention import last_layer_cls_attention, rollout_matrix
from xai_kedro.core.xai.explainers import (
    EXPLAINERS,
    attention_explainer,
    attention_rollout,
    get_explainer,
    rollout_explainer,
)
from xai_kedro.core.xai.references import eager_copy, eager_last_layer_attention, is_eager


def tiny_model(registers: int = 0, layers: int = 2, seed: int = 0) -> ViTClassifier:
    """Larger init so attention is far from uniform."""
    backbone = tiny_backbone(registers, seed, layers=layers, heads=4, init=0.25)
    return ViTClassifier(backbone, num_classes=5).eval()


def eager_attentions(model: ViTClassifier, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    backbone = copy.deepcopy(model.backbone)
    backbone.set_attn_implementation("eager")
    with torch.inference_mode():
        return list(backbone(pixel_values=pixel_values, output_attentions=True).attentions)


@pytest.fixture
def pixels() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32)


@pytest.mark.parametrize("registers", [0, 4])
def test_direct_cls_attention_matches_eager(registers, pixels):
    model = tiny_model(registers)
    assert model.backbone.config._attn_implementation == "sdpa"
    with torch.inference_mode():
        hidden, last_input = model.encode(model.embed(pixels), return_last_input=True)
        direct = last_layer_cls_attention(model, last_input)
    eager = eager_last_layer_attention(model, pixels)
    # by hand from the eager run: CLS row, patches only (registers excluded), mean heads, renorm
    att = eager_attentions(model, pixels)[-1][:, :, 0, 1 + registers :].mean(dim=1)
    by_hand = att / att.sum(dim=-1, keepdim=True)
    assert direct.shape == (3, 16)
    torch.testing.assert_close(direct, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(direct, by_hand, atol=1e-5, rtol=0)
    torch.testing.assert_close(direct.sum(dim=1), torch.ones(3), atol=1e-6, rtol=0)
    # the model still runs SDPA, and the heatmap is informative (not uniform)
    assert model.backbone.config._attn_implementation == "sdpa"
    assert (direct.max(dim=1).values > 2.0 / 16).all()


def test_eager_copy_runs_eager_with_the_same_outputs(pixels, monkeypatch):
    model = tiny_model(registers=1)
    eager = eager_copy(model)
    assert is_eager(eager) and not is_eager(model)  # the original keeps SDPA
    with torch.inference_mode():
        torch.testing.assert_close(eager(pixels), model(pixels), atol=1e-5, rtol=0)
    want = eager_last_layer_attention(model, pixels)
    # an eager model is used as it is: no second copy per call (the naive benchmark's loop)
    monkeypatch.setattr(references, "eager_copy", lambda m: pytest.fail("copied an eager model"))
    torch.testing.assert_close(eager_last_layer_attention(eager, pixels), want)


@pytest.mark.parametrize("registers", [0, 2])
def test_direct_cls_attention_on_a_token_subset(registers, pixels):
    """After token drop the heatmap covers the remaining patches; compare with eager encoder."""
    model = tiny_model(registers)
    p = model.n_prefix
    keep = torch.tensor([0, 3, 5, 6, 12])
    with torch.inference_mode():
        tokens = model.embed(pixels)
        seq = torch.cat([tokens[:, :p], tokens[:, p + keep]], dim=1)
        _, last_input = model.encode(seq, return_last_input=True)
        direct = last_layer_cls_attention(model, last_input)
        eager_backbone = copy.deepcopy(model.backbone)
        eager_backbone.set_attn_implementation("eager")
        att = eager_backbone.encoder(seq, output_attentions=True).attentions[-1]
    ref = att[:, :, 0, p:].mean(dim=1)
    ref = ref / ref.sum(dim=-1, keepdim=True)
    assert direct.shape == (3, len(keep))
    torch.testing.assert_close(direct, ref, atol=1e-5, rtol=0)


def test_rollout_matrix_rows_sum_to_one_and_hand_formula(pixels):
    model = tiny_model(registers=2)
    attns = [a.mean(dim=1) for a in eager_attentions(model, pixels)]
    roll = rollout_matrix(attns)
    torch.testing.assert_close(roll.sum(dim=-1), torch.ones(3, 19), atol=1e-5, rtol=0)
    # numpy hand formula: R = A2' @ A1', A' = rownorm(0.5 A + 0.5 I)
    eye = np.eye(19)
    mats = [0.5 * a.numpy().astype(np.float64) + 0.5 * eye for a in attns]
    mats = [m / m.sum(axis=-1, keepdims=True) for m in mats]
    np.testing.assert_allclose(roll.numpy(), mats[1] @ mats[0], atol=1e-5)
    with torch.inference_mode():
        heat = attention_rollout(model, pixels)
    cls = (mats[1] @ mats[0])[:, 0, 3:]
    np.testing.assert_allclose(heat.numpy(), cls / cls.sum(-1, keepdims=True), atol=1e-5)
    torch.testing.assert_close(heat.sum(dim=1), torch.ones(3), atol=1e-6, rtol=0)


def test_one_layer_rollout_is_the_hand_formula(pixels):
    model = tiny_model(layers=1)
    a = eager_attentions(model, pixels)[0].mean(dim=1).numpy().astype(np.float64)
    mixed = 0.5 * a + 0.5 * np.eye(a.shape[-1])
    row = (mixed / mixed.sum(-1, keepdims=True))[:, 0, 1:]
    with torch.inference_mode():
        heat = attention_rollout(model, pixels)
    np.testing.assert_allclose(heat.numpy(), row / row.sum(-1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_explainers_return_model_logits_and_leave_no_hooks(name, pixels):
    model = tiny_model(registers=1)
    explainer = get_explainer(name, **learned_settings(name))
    with torch.inference_mode():
        logits, heat = explainer(model, model.embed(pixels))
        expected = model(pixels)
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)
    assert heat.shape == (3, 16)
    assert all(len(layer._forward_pre_hooks) == 0 for layer in model.encoder_layers())


def test_attention_and_rollout_differ_on_a_deep_model(pixels):
    """Guards against rollout silently returning the last layer only."""
    model = tiny_model(layers=3)
    with torch.inference_mode():
        tokens = model.embed(pixels)
        _, att = attention_explainer(model, tokens)
        _, roll = rollout_explainer(model, tokens)
    assert (att - roll).abs().max() > 1e-3


def test_unknown_explainer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown explainer"):
        get_explainer("gradcam")


def _isolated_positions(heat: torch.Tensor, tolerance: float) -> torch.Tensor:
    """[B, N] bool: importance positions whose value is more than `tolerance` from both
    neighbours', so an error within `tolerance` cannot move another patch there."""
    gaps = -heat.sort(dim=1, descending=True).values.diff(dim=1)
    wide = torch.ones(heat.shape[0], 1, dtype=torch.bool)
    separated = gaps > tolerance
    return torch.cat([wide, separated], dim=1) & torch.cat([separated, wide], dim=1)


def _under_bf16_autocast_and_fp32(model: ViTClassifier, last_input: torch.Tensor, device: str):
    """The heatmap of one block input, under bf16 autocast and with autocast off."""
    with torch.inference_mode():
        with torch.autocast(device, dtype=torch.bfloat16):
            bf16 = last_layer_cls_attention(model, last_input)
        fp32 = last_layer_cls_attention(model, last_input)
    return bf16, fp32


def test_heatmap_is_float32_under_bf16_autocast_on_cpu(pixels):
    """CPU autocast rounds Linear inputs to bf16 as CUDA does: the scores must not see it."""
    model = tiny_model(registers=1)
    with torch.inference_mode():
        _, last_input = model.encode(model.embed(pixels), return_last_input=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = role_module(model.encoder_layers()[-1], "query")(last_input)
    assert rounded.dtype == torch.bfloat16  # autocast does act on this layer
    bf16, fp32 = _under_bf16_autocast_and_fp32(model, last_input, "cpu")
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, atol=0, rtol=0)
    np.testing.assert_array_equal(bf16.argsort(dim=1).numpy(), fp32.argsort(dim=1).numpy())


@needs_cuda
def test_cuda_heatmap_patch_order_under_bf16_matches_fp32(pixels, monkeypatch):
    """Same block input on the GPU: bf16 autocast gives fp32's patch order, and the CPU's."""
    fp32_on_cuda(monkeypatch)
    model = tiny_model(registers=1)
    with torch.inference_mode():
        _, last_input = model.encode(model.embed(pixels), return_last_input=True)
        cpu = last_layer_cls_attention(model, last_input)
    gpu_model = copy.deepcopy(model).cuda()
    bf16, fp32 = _under_bf16_autocast_and_fp32(gpu_model, last_input.cuda(), "cuda")
    # autocast is off inside: the very same float32 kernels, so the very same order
    torch.testing.assert_close(bf16, fp32, atol=0, rtol=0)
    order = bf16.cpu().argsort(dim=1, descending=True, stable=True)
    assert torch.equal(order, fp32.cpu().argsort(dim=1, descending=True, stable=True))
    # against the CPU: equal within fp32 error, so equal order wherever no near-tie exists
    tolerance = 1e-5
    torch.testing.assert_close(fp32.cpu(), cpu, atol=tolerance, rtol=0)
    isolated = _isolated_positions(cpu, tolerance)
    assert isolated.float().mean() > 0.5  # the check covers most positions
    order_cpu = cpu.argsort(dim=1, descending=True, stable=True)
    assert torch.equal(order[isolated], order_cpu[isolated])
