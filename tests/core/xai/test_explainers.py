"""The explainer registry and the explainers beyond raw attention, against plain references."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.core.tiny import needs_cuda, tiny_backbone
from tests.core.xai.learned_artifacts import learned_settings
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.explainers import (
    EXPLAINERS,
    configured_explainers,
    explainer_settings,
    get_explainer,
    normalised_heatmap,
    register_explainer,
)
from xai_kedro.core.xai.perturbation import rise_masks

N_PATCHES = 16  # 32 px / patch 8
# fewer perturbations than the defaults keep the tests quick
QUICK = {"rise": {"masks": 32}, "learned_mask": {"queries": 64, "steps": 40}}


def tiny_model(registers: int = 0, layers: int = 2, seed: int = 0) -> ViTClassifier:
    """Larger init and head so attention and probabilities react to perturbation."""
    backbone = tiny_backbone(registers, seed, layers=layers, heads=4, init=0.25)
    model = ViTClassifier(backbone, num_classes=4).eval()
    with torch.no_grad():
        model.head.weight.mul_(8.0)
    return model


@pytest.fixture
def pixels() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(4, 3, 32, 32)


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, w = x.shape
    return x.view(b, t, heads, w // heads).transpose(1, 2)


def hand_forward(model: ViTClassifier, tokens: torch.Tensor):
    """The classifier written out by hand, every attention matrix kept with its gradient."""
    heads = model.backbone.config.num_attention_heads
    hidden = tokens.clone().requires_grad_(True)
    attentions = []
    for layer in model.encoder_layers():
        x = layer.norm1(hidden)
        att = layer.attention
        q, k, v = (_split(proj(x), heads) for proj in (att.q_proj, att.k_proj, att.v_proj))
        probs = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
        probs.retain_grad()  # the total derivative dy/dA, every later layer included
        attentions.append(probs)
        context = (probs @ v).transpose(1, 2).reshape(hidden.shape)
        hidden = hidden + layer.layer_scale1(att.o_proj(context))
        hidden = hidden + layer.layer_scale2(layer.mlp(layer.norm2(hidden)))
    logits = model.head_logits(model.backbone.layernorm(hidden))
    return logits, attentions


def chefer_reference(model: ViTClassifier, tokens: torch.Tensor) -> torch.Tensor:
    """Chefer et al.'s generic rule with full matrices: R = I; R += Abar R; CLS row, patches."""
    logits, attentions = hand_forward(model, tokens)
    target = logits.argmax(dim=1)
    logits.gather(1, target[:, None]).sum().backward()
    t = tokens.shape[1]
    relevance = torch.eye(t).expand(tokens.shape[0], t, t)
    for probs in attentions:
        weighted = (probs.grad * probs).clamp_min(0).mean(dim=1)
        relevance = relevance + weighted @ relevance
    row = relevance[:, 0, model.n_prefix :].detach()
    return row / row.sum(dim=1, keepdim=True)


# ---------------------------------------------------------------------------- the registry
def test_registry_holds_the_five_explainers():
    assert {
        "attention",
        "rollout",
        "gradient_attention",
        "rise",
        "occlusion",
        "learned_mask",
    } <= set(EXPLAINERS)
    assert explainer_settings("rise") == {
        "masks": 256,
        "keep_prob": 0.5,
        "seed": 0,
        "max_batch_tokens": 262_144,
    }
    assert explainer_settings("attention") == {}


def test_register_explainer_decorator(request):
    request.addfinalizer(lambda: EXPLAINERS.unregister("constant"))

    @register_explainer("constant")
    def constant(model, tokens, *, level: float = 1.0):
        b, n = tokens.shape[0], tokens.shape[1] - 1
        return torch.zeros(b, 2), torch.full((b, n), level)

    assert EXPLAINERS.get("constant") is constant
    bound = get_explainer("constant", level=3.0)
    assert bound(None, torch.zeros(2, 5, 4))[1].eq(3.0).all()
    with pytest.raises(ValueError, match="registered twice"):
        register_explainer("constant")(lambda model, tokens: None)
    with pytest.raises(TypeError, match="need defaults"):
        register_explainer("no_default")(lambda model, tokens, *, level: None)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match=r"Unknown settings \['mask'\] for explainer 'rise'"):
        get_explainer("rise", mask=8)
    with pytest.raises(ValueError, match="setting 'masks' must be int, got str"):
        get_explainer("rise", masks="64")
    with pytest.raises(ValueError, match="setting 'keep_prob' must be float, got bool"):
        get_explainer("rise", keep_prob=True)
    assert get_explainer("rise", keep_prob=1).keywords == {"keep_prob": 1}
    with pytest.raises(ValueError, match="unknown explainer 'gradcam'"):
        configured_explainers({"gradcam": None})
    with pytest.raises(ValueError, match="empty"):
        configured_explainers({})
    model = tiny_model()
    tokens = model.embed(torch.zeros(1, 3, 32, 32)).detach()
    with pytest.raises(ValueError, match="keep_prob"):
        get_explainer("rise", keep_prob=0.0)(model, tokens)


def test_normalised_heatmap_clips_and_falls_back_to_uniform():
    heat = normalised_heatmap(torch.tensor([[2.0, -1.0, 2.0], [-1.0, 0.0, -3.0]]))
    torch.testing.assert_close(heat, torch.tensor([[0.5, 0.0, 0.5], [1 / 3, 1 / 3, 1 / 3]]))


# ------------------------------------------------------------------------ gradient attention
@pytest.mark.parametrize("registers", [0, 2])
def test_gradient_attention_on_one_layer_is_the_hand_relevance(registers, pixels):
    """One layer: R = I + Abar, so the heatmap is Abar's CLS row over the patches, renormalised,
    with Abar = mean_heads (dy_t/dA * A)^+ from the hand-written forward."""
    model = tiny_model(registers, layers=1)
    tokens = model.embed(pixels).detach()
    logits, (probs,) = hand_forward(model, tokens)
    target = logits.argmax(dim=1)
    logits.gather(1, target[:, None]).sum().backward()
    row = (probs.grad * probs).clamp_min(0).mean(dim=1)[:, 0, 1 + registers :]
    by_hand = row / row.sum(dim=1, keepdim=True)
    with torch.inference_mode():
        got_logits, heat = get_explainer("gradient_attention")(model, model.embed(pixels))
    assert heat.shape == (4, N_PATCHES)
    torch.testing.assert_close(got_logits, logits.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(heat, by_hand.detach(), atol=1e-5, rtol=1e-4)
    assert heat.max(dim=1).values.gt(2.0 / N_PATCHES).all()  # informative, not uniform


@pytest.mark.parametrize("registers", [0, 4])
def test_gradient_attention_on_three_layers_matches_full_matrix_rule(registers, pixels):
    model = tiny_model(registers, layers=3)
    want = chefer_reference(model, model.embed(pixels).detach())
    with torch.inference_mode():
        _, heat = get_explainer("gradient_attention")(model, model.embed(pixels))
    torch.testing.assert_close(heat, want, atol=1e-5, rtol=1e-4)
    with torch.inference_mode():
        _, rollout = get_explainer("rollout")(model, model.embed(pixels))
    assert (heat - rollout).abs().max() > 1e-3  # the gradients change the map


def test_gradient_attention_chunks_agree_and_leave_no_hooks(pixels):
    model = tiny_model(registers=1)
    with torch.inference_mode():
        tokens = model.embed(pixels)
        _, whole = get_explainer("gradient_attention")(model, tokens)
        _, chunked = get_explainer("gradient_attention", max_batch_images=1)(model, tokens)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-5)
    frozen = copy.deepcopy(model).requires_grad_(False)  # as build_inference_model returns it
    with torch.inference_mode():
        _, from_frozen = get_explainer("gradient_attention")(frozen, tokens)
    torch.testing.assert_close(from_frozen, whole, atol=1e-6, rtol=1e-5)
    for layer in model.encoder_layers():
        assert not layer._forward_pre_hooks
        assert not layer.attention.o_proj._forward_pre_hooks
    assert all(p.grad is None for p in model.parameters())


# ------------------------------------------------------------------------ perturbation
class OnePatchReader(nn.Module):
    """Reads one patch only: class 0's logit is `scale` x channel 0 summed over patch tokens,
    and only the read patch has a non-zero channel 0 (token drop keeps token identity)."""

    n_prefix = 1

    def __init__(self, scale: float = 3.0) -> None:
        super().__init__()
        self.scale = scale

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        signal = self.scale * tokens[:, self.n_prefix :, 0].sum(dim=1)
        return torch.stack([signal, torch.zeros_like(signal)], dim=1)


def reader_tokens(read: list[int], dim: int = 8) -> torch.Tensor:
    """[B, 1 + N, dim] tokens; image b's patch read[b] carries the marker."""
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randn(len(read), 1 + N_PATCHES, dim, generator=generator)
    tokens[:, :, 0] = 0.0
    for b, patch in enumerate(read):
        tokens[b, 1 + patch, 0] = 1.0
    return tokens


def test_rise_with_all_ones_masks_is_uniform(pixels):
    model = tiny_model(registers=2)
    with torch.inference_mode():
        logits, heat = get_explainer("rise", masks=8, keep_prob=1.0)(model, model.embed(pixels))
        expected = model(pixels)
    torch.testing.assert_close(heat, torch.full((4, N_PATCHES), 1.0 / N_PATCHES))
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)


def test_rise_puts_most_mass_on_the_one_patch_read():
    read = [0, 5, 10, 15]
    with torch.inference_mode():
        _, heat = get_explainer("rise", masks=512)(OnePatchReader(), reader_tokens(read))
    assert heat.argmax(dim=1).tolist() == read


def test_learned_mask_keeps_the_one_patch_read():
    read = [2, 9, 14]
    with torch.inference_mode():
        _, heat = get_explainer("learned_mask")(OnePatchReader(), reader_tokens(read))
    assert heat.argmax(dim=1).tolist() == read
    assert (heat.max(dim=1).values > 0.3).all()  # the sparsity term empties the other patches


def test_learned_mask_settings_are_checked():
    model = tiny_model()
    tokens = model.embed(torch.zeros(1, 3, 32, 32)).detach()
    with pytest.raises(ValueError, match="keep_prob"):
        get_explainer("learned_mask", keep_prob=1.0)(model, tokens)
    with pytest.raises(ValueError, match="lr must be > 0"):
        get_explainer("learned_mask", lr=0.0)(model, tokens)


def test_occlusion_ranks_the_one_patch_read_first():
    read = [3, 7, 12]
    with torch.inference_mode():
        _, heat = get_explainer("occlusion")(OnePatchReader(), reader_tokens(read))
    order = torch.argsort(-heat, dim=1, stable=True)
    assert order[:, 0].tolist() == read
    # only that patch changes the probability: all the mass is there
    torch.testing.assert_close(heat.max(dim=1).values, torch.ones(3))


def _prob(model: ViTClassifier, seq: torch.Tensor, target: int) -> float:
    return float(torch.softmax(model.forward_tokens(seq), dim=-1)[0, target])


class RegisterReader(nn.Module):
    """CLS + 2 registers; reads register 1 only, so no patch can matter."""

    n_prefix = 3

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        signal = 3.0 * tokens[:, 1, 0]
        return torch.stack([signal, -signal], dim=1)


def test_perturbations_never_drop_registers():
    """Were a register dropped, the probability would move and the maps would show it."""
    generator = torch.Generator().manual_seed(4)
    tokens = torch.randn(3, 3 + N_PATCHES, 8, generator=generator)
    with torch.inference_mode():
        _, occlusion = get_explainer("occlusion")(RegisterReader(), tokens)
        _, rise = get_explainer("rise", masks=64, seed=2)(RegisterReader(), tokens)
    torch.testing.assert_close(occlusion, torch.full((3, N_PATCHES), 1.0 / N_PATCHES))
    # a constant probability leaves RISE with the masks' own frequencies, the same per image
    frequency = rise_masks(64, N_PATCHES, 0.5, 2).float().sum(dim=0)
    torch.testing.assert_close(rise, (frequency / frequency.sum()).expand(3, -1))


def test_rise_and_occlusion_match_a_plain_loop(pixels):
    """One image, one mask per forward, the formulas written out."""
    model = tiny_model(registers=1)
    masks = 24
    with torch.inference_mode():
        tokens = model.embed(pixels[:2])
        _, rise = get_explainer("rise", masks=masks, seed=5)(model, tokens)
        _, occ = get_explainer("occlusion")(model, tokens)
        keep = rise_masks(masks, N_PATCHES, 0.5, 5)
        p = model.n_prefix
        for b in range(2):
            image = tokens[b : b + 1]
            target = int(model.forward_tokens(image).argmax())
            clean = _prob(model, image, target)
            saliency = torch.zeros(N_PATCHES)
            for mask in keep:
                kept = torch.nonzero(mask)[:, 0]
                seq = torch.cat([image[:, :p], image[:, p + kept]], dim=1)
                saliency += _prob(model, seq, target) * mask.float() / masks
            torch.testing.assert_close(rise[b], saliency / saliency.sum(), atol=1e-5, rtol=1e-4)
            drops = torch.zeros(N_PATCHES)
            for i in range(N_PATCHES):
                kept = torch.tensor([j for j in range(N_PATCHES) if j != i])
                seq = torch.cat([image[:, :p], image[:, p + kept]], dim=1)
                drops[i] = clean - _prob(model, seq, target)
            drops = drops.clamp_min(0)
            torch.testing.assert_close(occ[b], drops / drops.sum(), atol=1e-5, rtol=1e-4)


def test_rise_masks_are_seeded_and_shared():
    a = rise_masks(16, 9, 0.3, seed=1)
    torch.testing.assert_close(a, rise_masks(16, 9, 0.3, seed=1))
    assert not torch.equal(a, rise_masks(16, 9, 0.3, seed=2))
    assert a.dtype == torch.bool and 0.1 < a.float().mean() < 0.5


# ------------------------------------------------------------------------ every explainer
@pytest.mark.parametrize("name", sorted(EXPLAINERS))
@pytest.mark.parametrize("registers", [0, 4])
def test_every_explainer_batched_equals_one_image_at_a_time(name, registers, pixels):
    """Registers never appear in the heatmap, and a chunk's result does not depend on its
    company."""
    model = tiny_model(registers)
    explainer = get_explainer(name, **QUICK.get(name, {}), **learned_settings(name))
    with torch.inference_mode():
        tokens = model.embed(pixels)
        logits, heat = explainer(model, tokens)
        singles = [explainer(model, tokens[b : b + 1]) for b in range(4)]
        expected = model(pixels)
    assert heat.shape == (4, N_PATCHES) and heat.dtype == torch.float32
    assert heat.min() >= 0
    torch.testing.assert_close(heat.sum(dim=1), torch.ones(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(heat, torch.cat([h for _, h in singles]), atol=1e-5, rtol=1e-4)


def _close_to_fp32(bf16: torch.Tensor, fp32: torch.Tensor) -> None:
    """bf16 logits move the perturbation probabilities a little; the maps must stay close."""
    assert bf16.dtype == torch.float32 and bool(torch.isfinite(bf16).all())
    torch.testing.assert_close(bf16.sum(dim=1), torch.ones(len(bf16)), atol=1e-5, rtol=0)
    assert (bf16 - fp32).abs().max() < 0.1
    assert (bf16.argmax(dim=1) == fp32.argmax(dim=1)).float().mean() >= 0.75


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_explainers_run_under_bf16_autocast_on_cpu(name, pixels):
    """The dtype plumbing of the GPU path (bf16 activations, gradients and logits), on the CPU."""
    model = tiny_model(registers=1)
    explainer = get_explainer(name, **QUICK.get(name, {}), **learned_settings(name))
    with torch.inference_mode():
        tokens = model.embed(pixels)
        _, fp32 = explainer(model, tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, bf16 = explainer(model, tokens)
    assert logits.dtype == torch.bfloat16  # autocast did act
    _close_to_fp32(bf16, fp32)


@needs_cuda
@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_cuda_bf16_heatmaps_follow_the_cpu(name, pixels):
    """Under bf16 autocast on the GPU every explainer runs and stays near the CPU's fp32 map."""
    model = tiny_model(registers=1)
    explainer = get_explainer(name, **QUICK.get(name, {}), **learned_settings(name))
    with torch.inference_mode():
        _, cpu = explainer(model, model.embed(pixels))
        gpu_model = copy.deepcopy(model).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, gpu = explainer(gpu_model, gpu_model.embed(pixels.cuda()))
    _close_to_fp32(gpu.cpu(), cpu)
