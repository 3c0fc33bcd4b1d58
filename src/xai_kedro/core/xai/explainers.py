"""The explainer registry: name -> batched function (model, tokens) -> (logits, heatmap).

Every explainer takes the embedded token sequence (so the engine embeds once and reuses the
embedding for token-drop perturbations) and returns logits and a patch heatmap [B, N] (CLS and
register tokens excluded, rows sum to 1) from the same forward where it can.
"""

from __future__ import annotations

from typing import Protocol

import torch

from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.attention import (
    capture_layer_inputs,
    last_layer_cls_attention,
    rollout_from_inputs,
)


class Explainer(Protocol):
    """(model, embedded tokens [B, P + N, D]) -> (logits [B, C], heatmap [B, N]), one forward."""

    def __call__(
        self, model: ViTClassifier, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def attention_explainer(
    model: ViTClassifier, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and last-layer CLS attention from the same forward pass."""
    hidden, last_input = model.encode(tokens, return_last_input=True)
    return model.head_logits(hidden), last_layer_cls_attention(model, last_input)


def rollout_explainer(
    model: ViTClassifier, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and attention rollout; layer inputs are captured from the logits' own forward."""
    with capture_layer_inputs(model) as inputs:
        logits = model.forward_tokens(tokens)
    return logits, rollout_from_inputs(model, inputs)


def attention_rollout(model: ViTClassifier, pixel_values: torch.Tensor) -> torch.Tensor:
    """Rollout heatmap [B, N] of normalised pixel input [B, 3, S, S]."""
    return rollout_explainer(model, model.embed(pixel_values))[1]


EXPLAINERS: dict[str, Explainer] = {
    "attention": attention_explainer,
    "rollout": rollout_explainer,
}


def get_explainer(name: str) -> Explainer:
    if name not in EXPLAINERS:
        raise ValueError(f"Unknown explainer {name!r}; expected one of {sorted(EXPLAINERS)}")
    return EXPLAINERS[name]
