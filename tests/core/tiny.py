"""Tiny random DINOv2 models shared by the core tests (32 px, patch 8: 16 patches)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
)


def tiny_backbone(
    registers: int = 0,
    seed: int = 0,
    *,
    layers: int = 2,
    heads: int = 2,
    size: int = 32,
    init: float | None = None,
) -> nn.Module:
    """Width 32; `init` raises the initializer range so attention is far from uniform."""
    torch.manual_seed(seed)
    common = dict(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        mlp_ratio=2,
        patch_size=8,
        image_size=size,
    )
    if init is not None:
        common["initializer_range"] = init
    if registers:
        return Dinov2WithRegistersModel(
            Dinov2WithRegistersConfig(num_register_tokens=registers, **common)
        ).eval()
    return Dinov2Model(Dinov2Config(**common)).eval()
