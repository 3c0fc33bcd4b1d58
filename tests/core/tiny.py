"""Tiny random DINOv2 models shared by the core tests (32 px, patch 8: 16 patches), and the
switches the CUDA tests use (they run on a GPU machine; CI skips them)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import ModuleType

import pytest
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


def hub_cache_stand_in(cache: Path, repo_id: str, model: nn.Module) -> Path:
    """Write `model` where `from_pretrained(repo_id, local_files_only=True)` looks in a Hugging
    Face cache (refs/main -> snapshots/<revision>); returns the snapshot directory."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    revision = "0" * 40
    snapshot = repo / "snapshots" / revision
    model.save_pretrained(str(snapshot))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def fp32_on_cuda(monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> None:
    """Autocast off in `modules` and no TF32, so CUDA results compare tightly with the CPU."""
    for module in modules:
        monkeypatch.setattr(module, "autocast_for", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
