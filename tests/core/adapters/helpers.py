"""Small models and configs shared by the adapter tests."""

from __future__ import annotations

import copy

import torch
from torch import nn

from tests.core.tiny import tiny_backbone as shared_tiny_backbone
from xai_kedro.core.adapters import (
    AdapterConfig,
    attach_adapter,
    save_adapter,
)
from xai_kedro.core.models.classifier import ViTClassifier

NUM_CLASSES = 3
ALL_ROLES = ("query", "value", "fc1", "fc2")


def tiny_backbone(registers: int = 0, seed: int = 0) -> nn.Module:
    return shared_tiny_backbone(registers, seed).requires_grad_(False)


def trained_like(classifier: nn.Module, seed: int = 1, scale: float = 0.2) -> nn.Module:
    """Give every trainable tensor a random non-zero value (LoRA B starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in classifier.parameters():
            if param.requires_grad:
                param.add_(scale * torch.randn(param.shape, generator=gen))
    return classifier.eval()


def pixels(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def lora_cfg(**kw) -> AdapterConfig:
    params = dict(adapter_id="a", rank=4, alpha="2r", target_roles=ALL_ROLES)
    params.update(kw)
    return AdapterConfig.from_params(params)


# ---------------------------------------------------------------------------------- config

_OTHER_NAMING = {
    "attention.q_proj": "attention.attention.query",
    "attention.v_proj": "attention.attention.value",
    "attention.attention.query": "attention.q_proj",
    "attention.attention.value": "attention.v_proj",
}


def other_naming(name: str) -> str:
    for old, new in _OTHER_NAMING.items():
        if old in name:
            return name.replace(old, new)
    return name


# --------------------------------------------------------------------------------- storage
def _saved(tmp_path, cfg: AdapterConfig, registers: int = 0, name: str = "adapter"):
    backbone = tiny_backbone(registers)
    clf = trained_like(attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), cfg))
    directory = tmp_path / name
    save_adapter(clf, cfg, directory, {"config_hash": "h1", "metrics": {"accuracy": 0.5}})
    return backbone, clf, directory
