"""LoRA targets resolved by role under both transformers namings."""

from __future__ import annotations

import pytest
from torch import nn

from tests.core.adapters.helpers import (
    ALL_ROLES,
    tiny_backbone,
)
from xai_kedro.core.adapters import (
    resolve_target_modules,
)
from xai_kedro.core.models.classifier import ViTClassifier


def test_resolve_targets_installed_transformers():
    backbone = tiny_backbone()
    names = resolve_target_modules(backbone, ALL_ROLES)
    assert len(names) == 2 * len(ALL_ROLES)
    modules = dict(backbone.named_modules())
    assert all(isinstance(modules[n], nn.Linear) for n in names)
    assert any(n.endswith(("attention.q_proj", "attention.attention.query")) for n in names)
    assert {n.split(".")[2] for n in names} == {"0", "1"}
    # Names are relative to the model passed in.
    clf_names = resolve_target_modules(ViTClassifier(backbone, 2), ["value"])
    assert all(n.startswith("backbone.encoder.layer.") for n in clf_names)


class _OldAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention = nn.Module()
        self.attention.query = nn.Linear(d, d)
        self.attention.value = nn.Linear(d, d)
        self.output = nn.Module()
        self.output.dense = nn.Linear(d, d)


class _OldBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention = _OldAttention(d)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, 2 * d)
        self.mlp.fc2 = nn.Linear(2 * d, d)


def _old_scheme_model(layers: int = 3) -> nn.Module:
    model = nn.Module()
    model.encoder = nn.Module()
    model.encoder.layer = nn.ModuleList([_OldBlock(8) for _ in range(layers)])
    return model


def test_resolve_targets_old_naming_scheme():
    names = resolve_target_modules(_old_scheme_model(), ["query", "value", "output", "fc1", "fc2"])
    assert names[:5] == [
        "encoder.layer.0.attention.attention.query",
        "encoder.layer.0.attention.attention.value",
        "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.mlp.fc1",
        "encoder.layer.0.mlp.fc2",
    ]
    assert len(names) == 15


def test_resolve_targets_errors():
    with pytest.raises(ValueError, match="Unknown target roles"):
        resolve_target_modules(tiny_backbone(), ["qkv"])
    with pytest.raises(ValueError, match="'key' has no linear"):
        resolve_target_modules(_old_scheme_model(), ["key"])  # the fake block has no key
    with pytest.raises(ValueError, match="encoder.layer"):
        resolve_target_modules(nn.Sequential(nn.Linear(2, 2)), ["query"])


# ------------------------------------------------------------------------------- attaching
