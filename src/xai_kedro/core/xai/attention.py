"""Attention heatmaps computed directly from block inputs, so every layer keeps its SDPA kernel.

Switching a model to eager attention with `output_attentions=True` materialises every layer's
[B, heads, T, T] matrix and loses the fused kernels (~70x slower in the design's measurements).
The last layer's CLS row is cheap to recompute from that layer's input: norm1, query/key
projections, one scaled dot product. Rollout needs every layer's matrix; it recomputes them
from inputs captured with forward pre-hooks while the model itself runs with SDPA.

Every explainer takes the embedded token sequence (so the XAI engine can embed once and reuse
the embedding for token-drop perturbations) and returns `(logits, heatmap)` from ONE forward.

The query row is the CLS token's; a family with no CLS token (SigLIP, which pools with an
attention head the classifier does not use) takes the mean over all query rows instead: the
attention each patch receives, the share it has in the mean-pooled token (docs/metrics.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import BACKBONES, BackboneFamily

ROLLOUT_RESIDUAL_WEIGHT = 0.5  # Abnar & Zuidema: A' = 0.5 * A + 0.5 * I accounts for the skip path


def fp32(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off: attention maps and their products stay float32 under bf16 autocast."""
    return torch.autocast(device_type=device.type, enabled=False)


def _norm1(layer: nn.Module, family: BackboneFamily | None = None) -> nn.Module:
    """The block's pre-attention norm (DINOv2's `norm1`, ViT's `layernorm_before`, ...)."""
    return (family or BACKBONES.get("dinov2")).pre_attention_norm(layer)


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """[B, T, H*d] -> [B, H, T, d]."""
    b, t, width = x.shape
    if width % num_heads != 0:
        raise ValueError(f"projection width {width} is not divisible by {num_heads} heads")
    return x.view(b, t, num_heads, width // num_heads).transpose(1, 2)


def _project_fp32(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A query/key projection in float32 (call under `fp32`): float32 weights and input.

    Under bf16 autocast a plain Linear would round its input and weights to bf16, and the
    patch order of the heatmap could then differ from the CPU's; a PEFT-wrapped layer (unmerged
    adapter) runs as it is, with autocast off and a float32 input.
    """
    if type(module) is nn.Linear:
        bias = None if module.bias is None else module.bias.float()
        return F.linear(x, module.weight.float(), bias)
    return module(x)


def attention_probs(
    layer: nn.Module,
    hidden: torch.Tensor,
    num_heads: int,
    query_tokens: int | None = None,
    family: BackboneFamily | None = None,
) -> torch.Tensor:
    """Softmax attention [B, heads, Q, T] of one block, from that block's input `hidden`.

    Q is the first `query_tokens` tokens (1 = the CLS row only) or all of them. The norm, the
    query/key projections, the scores and the softmax are all float32 even under bf16 autocast
    (only the block input itself carries the model's precision); the softmax runs over ALL
    tokens, as in the model. `family` names the block's modules (DINOv2 by default).
    """
    family = family or BACKBONES.get("dinov2")
    with fp32(hidden.device):
        x = family.pre_attention_norm(layer)(hidden.float())
        xq = x if query_tokens is None else x[:, :query_tokens]
        q = _split_heads(_project_fp32(family.role_module(layer, "query"), xq), num_heads)
        k = _split_heads(_project_fp32(family.role_module(layer, "key"), x), num_heads)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        return torch.softmax(scores, dim=-1)


def patch_heatmap(cls_row: torch.Tensor, n_prefix: int) -> torch.Tensor:
    """CLS attention [B, heads, T] -> mean over heads, patch tokens only, renormalised: [B, T - P]."""
    patches = cls_row.mean(dim=1)[:, n_prefix:]
    total = patches.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(patches.dtype).tiny)
    return patches / total


def num_heads_of(model: ViTClassifier) -> int:
    return int(model.backbone.config.num_attention_heads)


def last_layer_cls_attention(model: ViTClassifier, last_input: torch.Tensor) -> torch.Tensor:
    """Heatmap [B, N]: last block's CLS->patch attention, mean over heads, renormalised over patches.

    `last_input` [B, P + N, D] is the last block's input (`model.encode(..., return_last_input=True)`);
    any subset of patch tokens works (N is whatever remains after token drop).
    """
    if last_input.ndim != 3:
        raise ValueError(f"last_input must be [B, T, D], got shape {tuple(last_input.shape)}")
    layer = model.encoder_layers()[-1]
    heads, family = num_heads_of(model), model.family
    if family.has_cls:
        cls_row = attention_probs(layer, last_input, heads, query_tokens=1, family=family)[:, :, 0]
    else:  # no CLS token: the attention each patch receives, mean over all queries
        cls_row = attention_probs(layer, last_input, heads, family=family).mean(dim=2)
    return patch_heatmap(cls_row, model.n_prefix)


@contextlib.contextmanager
def capture_layer_inputs(model: ViTClassifier) -> Iterator[list[torch.Tensor]]:
    """Collect the hidden-state input of every encoder block during the forwards run inside."""
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append(args[0] if args else kwargs["hidden_states"])

    handles = [
        layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in model.encoder_layers()
    ]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def rollout_matrix(
    attentions: Sequence[torch.Tensor], residual_weight: float = ROLLOUT_RESIDUAL_WEIGHT
) -> torch.Tensor:
    """Attention rollout [B, T, T] from head-averaged layer attentions [B, T, T] (first layer first).

    Per layer A' = (1 - w) A + w I, rows renormalised; rollout = A'_L ... A'_1 (Abnar & Zuidema).
    """
    if not attentions:
        raise ValueError("rollout needs at least one layer's attention")
    result = None
    with fp32(attentions[0].device):
        for attn in attentions:
            attn = attn.float()
            eye = torch.eye(attn.shape[-1], device=attn.device, dtype=attn.dtype)
            mixed = (1.0 - residual_weight) * attn + residual_weight * eye
            mixed = mixed / mixed.sum(dim=-1, keepdim=True)
            result = mixed if result is None else torch.matmul(mixed, result)
    return result


def rollout_from_inputs(
    model: ViTClassifier,
    layer_inputs: Sequence[torch.Tensor],
    residual_weight: float = ROLLOUT_RESIDUAL_WEIGHT,
) -> torch.Tensor:
    """Rollout heatmap [B, N] from every block's input (CLS row, patches, renormalised)."""
    layers = model.encoder_layers()
    if len(layer_inputs) != len(layers):
        raise ValueError(f"{len(layer_inputs)} captured inputs for {len(layers)} layers")
    heads = num_heads_of(model)
    attns = [
        attention_probs(layer, h, heads, family=model.family).mean(dim=1)
        for layer, h in zip(layers, layer_inputs, strict=True)
    ]
    rollout = rollout_matrix(attns, residual_weight)
    cls_row = rollout[:, 0] if model.family.has_cls else rollout.mean(dim=1)
    return patch_heatmap(cls_row[:, None], model.n_prefix)
