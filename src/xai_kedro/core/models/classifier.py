"""The classifier every stage shares: a ViT backbone and a linear head on [CLS ; mean patch].

The backbone's family (`core.models.families`) says where its blocks, norms and prefix tokens
are; a family with no CLS token (SigLIP) gets a head on the mean patch token alone.

The forward is split into `embed` -> `encode` -> `head_logits` so that the XAI engine can drop
patch tokens between embedding and encoder (token_drop perturbation) and read the input of the
last layer (direct CLS attention) while every layer keeps its SDPA kernel.
"""

from __future__ import annotations

import torch
from torch import nn

from xai_kedro.core.models.families import BACKBONES, BackboneFamily, family_of

# DINOv2's linear-layer roles and their module-name suffixes across transformers versions
# (< 5.18 `attention.attention.query`, >= 5.18 `attention.q_proj`); other families declare theirs.
ROLE_SUFFIXES: dict[str, tuple[str, ...]] = dict(BACKBONES.get("dinov2").roles)


def role_module(layer: nn.Module, role: str, family: BackboneFamily | None = None) -> nn.Module:
    """The linear layer playing `role` inside one block of `family` (DINOv2 by default).

    PEFT wraps the linear; its `base_layer` keeps the original weights.
    """
    return (family or BACKBONES.get("dinov2")).role_module(layer, role)


def num_prefix_tokens(backbone: nn.Module) -> int:
    """The tokens before the patches (CLS, registers, distillation token) of this backbone."""
    return family_of(backbone).num_prefix(backbone.config)


def _layer_output(out: torch.Tensor | tuple) -> torch.Tensor:
    # transformers 4.x layers return tuples, 5.x tensors.
    return out[0] if isinstance(out, tuple) else out


class ViTClassifier(nn.Module):
    """Frozen-or-adapted ViT backbone + linear head on concat(CLS, mean of patch tokens)."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.family = family_of(backbone)
        hidden = backbone.config.hidden_size
        self.head = nn.Linear((2 if self.family.has_cls else 1) * hidden, num_classes)
        self.n_prefix = self.family.num_prefix(backbone.config)

    @property
    def image_size(self) -> int:
        return int(self.backbone.config.image_size)

    @property
    def patch_size(self) -> int:
        return int(self.backbone.config.patch_size)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def encoder_layers(self) -> nn.ModuleList:
        return self.family.encoder_layers(self.backbone)

    def role_module(self, layer: nn.Module, role: str) -> nn.Module:
        return self.family.role_module(layer, role)

    def pre_attention_norm(self, layer: nn.Module) -> nn.Module:
        return self.family.pre_attention_norm(layer)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch + position embeddings with the prefix tokens prepended: [B, P + N, D]."""
        return self.family.embed(self.backbone, pixel_values)

    def encode(
        self, tokens: torch.Tensor, return_last_input: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run all blocks and the final LayerNorm; optionally also return the last block's input."""
        hidden = tokens
        layers = self.encoder_layers()
        call = self.family.call_layer
        for layer in layers[:-1]:
            hidden = _layer_output(call(layer, hidden))
        last_input = hidden
        hidden = _layer_output(call(layers[-1], hidden))
        hidden = self.family.final_layernorm(self.backbone)(hidden)
        return (hidden, last_input) if return_last_input else hidden

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """[CLS ; mean patch] (mean patch alone without CLS); no patch left: a zero mean vector."""
        patches = hidden[:, self.n_prefix :]
        if not self.family.has_cls:
            if patches.shape[1] == 0:
                return hidden.new_zeros(hidden.shape[0], hidden.shape[2])
            return patches.mean(dim=1)
        cls = hidden[:, 0]
        mean = torch.zeros_like(cls) if patches.shape[1] == 0 else patches.mean(dim=1)
        return torch.cat([cls, mean], dim=-1)

    def head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(hidden))

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.encode(tokens))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(self.embed(pixel_values))
