"""The classifier every stage shares: a DINOv2 backbone and a linear head on [CLS ; mean patch].

The forward is split into `embed` -> `encode` -> `head_logits` so that the XAI engine can drop
patch tokens between embedding and encoder (token_drop perturbation) and read the input of the
last layer (direct CLS attention) while every layer keeps its SDPA kernel.
"""

from __future__ import annotations

import torch
from torch import nn

# Linear-layer roles and the module-name suffixes they have across transformers versions:
# transformers < 5.18 names them `attention.attention.query`, >= 5.18 `attention.q_proj`.
ROLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "query": ("attention.attention.query", "attention.q_proj"),
    "key": ("attention.attention.key", "attention.k_proj"),
    "value": ("attention.attention.value", "attention.v_proj"),
    "output": ("attention.output.dense", "attention.o_proj"),
    "fc1": ("mlp.fc1",),
    "fc2": ("mlp.fc2",),
}


def role_module(layer: nn.Module, role: str) -> nn.Linear:
    """The linear layer playing `role` inside one transformer block, whatever its name."""
    if role not in ROLE_SUFFIXES:
        raise ValueError(f"Unknown role {role!r}; expected one of {sorted(ROLE_SUFFIXES)}")
    modules = dict(layer.named_modules())
    for suffix in ROLE_SUFFIXES[role]:
        module = modules.get(suffix)
        if module is not None:
            # PEFT wraps the linear; its `base_layer` keeps the original weights.
            return module
    raise KeyError(
        f"No module for role {role!r} in {type(layer).__name__}: {sorted(modules)[:12]}…"
    )


def num_prefix_tokens(backbone: nn.Module) -> int:
    """CLS plus register tokens (DINOv2 with registers) that precede the patch tokens."""
    return 1 + int(getattr(backbone.config, "num_register_tokens", 0) or 0)


def _layer_output(out: torch.Tensor | tuple) -> torch.Tensor:
    # transformers 4.x layers return tuples, 5.x tensors.
    return out[0] if isinstance(out, tuple) else out


class ViTClassifier(nn.Module):
    """Frozen-or-adapted DINOv2 backbone + linear head on concat(CLS, mean of patch tokens)."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(2 * hidden, num_classes)
        self.n_prefix = num_prefix_tokens(backbone)

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
        return self.backbone.encoder.layer

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch + position embeddings with CLS/register tokens prepended: [B, P + N, D]."""
        return self.backbone.embeddings(pixel_values)

    def encode(
        self, tokens: torch.Tensor, return_last_input: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run all blocks and the final LayerNorm; optionally also return the last block's input."""
        hidden = tokens
        layers = self.encoder_layers()
        for layer in layers[:-1]:
            hidden = _layer_output(layer(hidden))
        last_input = hidden
        hidden = _layer_output(layers[-1](hidden))
        hidden = self.backbone.layernorm(hidden)
        return (hidden, last_input) if return_last_input else hidden

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """[CLS ; mean patch]; with no patch token left the mean is a defined zero vector."""
        cls = hidden[:, 0]
        patches = hidden[:, self.n_prefix :]
        mean = torch.zeros_like(cls) if patches.shape[1] == 0 else patches.mean(dim=1)
        return torch.cat([cls, mean], dim=-1)

    def head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(hidden))

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.encode(tokens))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(self.embed(pixel_values))
