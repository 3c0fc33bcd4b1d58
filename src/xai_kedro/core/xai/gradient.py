"""Gradient-weighted attention relevance: Chefer, Gur & Wolf's generic rule, batched.

Chefer et al. (2021, "Generic Attention-model Explainability for Interpreting Bi-Modal and
Encoder-Decoder Transformers") weight every layer's attention A_l by the gradient of the target
logit y_t with respect to it: Abar_l = E_heads[(dy_t/dA_l * A_l)^+], and accumulate
R <- R + Abar_l R from R = I, first layer first. The heatmap is the CLS row of R over the patch
tokens. Only that row is needed, so it is propagated as a row vector from the last layer down
(r <- r + r Abar_l), O(T^2) per layer instead of the T^3 matrix product.

The model keeps its SDPA kernels: dy/dA is recovered exactly from the gradient at the attention
context O = A V (the input of the output projection), dy/dA_h = (dy/dO_h) V_h^T, so no layer
has to materialise or return its attention weights. Autograd runs for that one forward and
backward (from the embedded tokens on, never through the patch embedding); A and V are then
recomputed from the captured block inputs without a graph, in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from xai_kedro.core.common.device import autocast_for
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import BackboneFamily
from xai_kedro.core.models.inference import iter_batches
from xai_kedro.core.xai.attention import (
    _split_heads,
    attention_probs,
    fp32,
    num_heads_of,
)
from xai_kedro.core.xai.explainers import normalised_heatmap, register_explainer


@contextlib.contextmanager
def capture_attention_io(
    model: ViTClassifier,
) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Collect every block's input and its attention context (input of the output projection)."""
    layer_inputs: list[torch.Tensor] = []
    contexts: list[torch.Tensor] = []

    def block_hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        layer_inputs.append(args[0] if args else kwargs["hidden_states"])

    def context_hook(_module: nn.Module, args: tuple) -> None:
        contexts.append(args[0])

    handles = []
    try:
        for layer in model.encoder_layers():
            handles.append(layer.register_forward_pre_hook(block_hook, with_kwargs=True))
            output = model.role_module(layer, "output")
            handles.append(output.register_forward_pre_hook(context_hook))
        yield layer_inputs, contexts
    finally:
        for handle in handles:
            handle.remove()


def _context_gradients(
    model: ViTClassifier, tokens: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """One forward + backward with autograd: logits, block inputs and d y_target / d context."""
    with torch.inference_mode(False), torch.enable_grad():
        x = tokens.clone().requires_grad_(True)  # a normal tensor, so autograd may record it
        with capture_attention_io(model) as (layer_inputs, contexts), autocast_for(tokens.device):
            logits = model.forward_tokens(x)
        target = logits.detach().argmax(dim=1)
        # images are independent, so the gradient of the sum is each image's own gradient
        score = logits.float().gather(1, target[:, None]).sum()
        grads = torch.autograd.grad(score, contexts)
    return (
        logits.detach(),
        [h.detach() for h in layer_inputs],
        [g.detach() for g in grads],
    )


def _weighted_attention(
    layer: nn.Module,
    hidden: torch.Tensor,
    context_grad: torch.Tensor,
    num_heads: int,
    family: BackboneFamily,
) -> torch.Tensor:
    """Abar = mean over heads of (dy/dA * A)^+, [B, T, T] float32, with dy/dA = dy/dO V^T."""
    attn = attention_probs(layer, hidden, num_heads, family=family)  # [B, H, T, T] float32
    with fp32(hidden.device):
        normed = family.pre_attention_norm(layer)(hidden.float())
        value = _split_heads(family.role_module(layer, "value")(normed), num_heads)
        grad_o = _split_heads(context_grad.float(), num_heads)
        grad_attn = torch.matmul(grad_o, value.float().transpose(-1, -2))
        return (grad_attn * attn).clamp_min(0.0).mean(dim=1)


def gradient_relevance(
    model: ViTClassifier, layer_inputs: list[torch.Tensor], context_grads: list[torch.Tensor]
) -> torch.Tensor:
    """CLS relevance row [B, T] of R = prod_l (I + Abar_l), from the captured forward/backward."""
    layers = model.encoder_layers()
    if not len(layer_inputs) == len(context_grads) == len(layers):
        raise ValueError(
            f"{len(layer_inputs)} block inputs and {len(context_grads)} gradients "
            f"for {len(layers)} layers"
        )
    heads = num_heads_of(model)
    b, t, _ = layer_inputs[0].shape
    with fp32(layer_inputs[0].device):
        row = torch.zeros(b, 1, t, device=layer_inputs[0].device, dtype=torch.float32)
        if model.family.has_cls:
            row[:, 0, 0] = 1.0
        else:  # no CLS token: the mean of R's rows
            row += 1.0 / t
        steps = list(zip(layers, layer_inputs, context_grads, strict=True))
        for layer, hidden, grad in reversed(steps):  # r <- r (I + Abar_l), last layer first
            weighted = _weighted_attention(layer, hidden, grad, heads, model.family)
            row = row + torch.matmul(row, weighted)
    return row[:, 0]


@register_explainer("gradient_attention")
def gradient_attention_explainer(
    model: ViTClassifier, tokens: torch.Tensor, *, max_batch_images: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and Chefer et al.'s relevance of the predicted class; autograd in chunks of
    `max_batch_images` images (its activations are kept for the backward)."""
    if max_batch_images < 1:
        raise ValueError(
            f"gradient_attention: max_batch_images must be >= 1, not {max_batch_images}"
        )
    logits_parts, heat_parts = [], []
    for sl in iter_batches(tokens.shape[0], max_batch_images):
        logits, layer_inputs, grads = _context_gradients(model, tokens[sl])
        with torch.inference_mode():
            row = gradient_relevance(model, layer_inputs, grads)
            heat_parts.append(normalised_heatmap(row[:, model.n_prefix :]))
        logits_parts.append(logits)
    return torch.cat(logits_parts), torch.cat(heat_parts)
