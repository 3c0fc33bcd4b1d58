"""Adapter bytes + a pristine backbone -> a merged, eval-mode classifier for inference.

Stored targets are re-resolved, so an adapter trained under one transformers naming loads under
the other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping

import torch
from peft import LoraConfig, LoraModel
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load as load_safetensors_bytes
from torch import nn

from xai_kedro.core.adapters.attach import ADAPTER_NAME, has_lora
from xai_kedro.core.adapters.storage import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    HEAD_WEIGHTS,
    PEFT_PREFIX,
    _verify_files,
    read_adapter_meta,
)
from xai_kedro.core.adapters.targets import _LAYER_PATTERN, _role_of_suffix, resolve_target_modules
from xai_kedro.core.models.classifier import ViTClassifier


def adapted_modules(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Full names of the modules that carry LoRA weights, read from the weight keys.

    The weights, not `target_modules` of the stored config, say what was adapted: PEFT rewrites
    a list of 20 or more module names into bare suffixes ("fc1", "q_proj") before saving, which
    no longer name a module (and cannot be mapped onto the other transformers naming).
    """
    names = set()
    for key in state:
        parts = key.removeprefix(PEFT_PREFIX).split(".")
        cut = next((i for i, part in enumerate(parts) if part.startswith("lora_")), None)
        if cut:
            names.add(".".join(parts[:cut]))
    if not names:
        raise ValueError(f"Adapter weights hold no LoRA tensors: {sorted(state)[:4]}")
    return sorted(names)


def _translate_targets(model: nn.Module, saved: list[str]) -> dict[str, str]:
    """Map stored target module names onto this model's names (other naming scheme)."""
    present = dict(model.named_modules())
    mapping: dict[str, str] = {}
    for name in saved:
        if name in present:
            mapping[name] = name
            continue
        match = _LAYER_PATTERN.match(name)
        role = _role_of_suffix(match.group("suffix")) if match else None
        if match is None or role is None:
            raise ValueError(f"Adapter target {name!r} does not exist in this backbone")
        idx = int(match.group("idx"))
        candidates = [
            n
            for n in resolve_target_modules(model, [role])
            if _LAYER_PATTERN.match(n) and int(_LAYER_PATTERN.match(n).group("idx")) == idx
        ]
        if len(candidates) != 1:
            raise ValueError(f"Cannot map adapter target {name!r} onto this backbone")
        mapping[name] = candidates[0]
    return mapping


def _translate_state(
    state: dict[str, torch.Tensor], mapping: dict[str, str]
) -> dict[str, torch.Tensor]:
    by_length = sorted(mapping, key=len, reverse=True)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        bare = key.removeprefix(PEFT_PREFIX)
        source = next((s for s in by_length if bare.startswith(s + ".")), None)
        if source is None:
            raise ValueError(f"Adapter weight {key!r} belongs to no target module")
        out[mapping[source] + bare[len(source) :]] = value
    return out


def _load_lora(
    model: nn.Module, files: dict[str, bytes], merge: bool, device: torch.device
) -> nn.Module:
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if name not in files:
            raise ValueError(f"LoRA adapter files lack {name}: {sorted(files)}")
    raw = json.loads(files[ADAPTER_CONFIG].decode("utf-8"))
    lora_cfg = LoraConfig.from_peft_type(**LoraConfig.check_kwargs(**raw))
    if not isinstance(lora_cfg, LoraConfig):
        raise ValueError(f"Expected a LoRA adapter config, got {type(lora_cfg).__name__}")
    state = load_safetensors_bytes(files[ADAPTER_WEIGHTS])
    mapping = _translate_targets(model, adapted_modules(state))
    lora_cfg.target_modules = sorted(set(mapping.values()))
    lora_cfg.inference_mode = True
    state = {k: v.to(device) for k, v in _translate_state(state, mapping).items()}
    # The tuner is what `inject_adapter_in_model` builds internally; keeping it gives merge.
    tuner = LoraModel(model, lora_cfg, ADAPTER_NAME, low_cpu_mem_usage=True)
    result = set_peft_model_state_dict(tuner.model, state, ADAPTER_NAME, low_cpu_mem_usage=True)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"Adapter weights do not fit the backbone: missing {missing[:4]}, "
            f"unexpected {list(result.unexpected_keys)[:4]}"
        )
    return tuner.merge_and_unload() if merge else tuner.model


def build_inference_model(
    backbone: nn.Module, files: dict[str, bytes], num_classes: int, merge: bool = True
) -> ViTClassifier:
    """Adapter bytes + a pristine backbone -> an eval-mode classifier (the backbone is copied).

    With `merge=True` LoRA/DoRA deltas are folded into the base weights, so inference runs
    plain Linear layers at backbone speed. Only safetensors and JSON are read.
    """
    if has_lora(backbone) or hasattr(backbone, "peft_config"):
        raise ValueError("build_inference_model needs the pristine backbone, not an adapted one")
    _verify_files(files)
    meta = read_adapter_meta(files)
    if int(meta["num_classes"]) != int(num_classes):
        raise ValueError(
            f"Adapter {meta.get('adapter_id')} has {meta['num_classes']} classes, expected {num_classes}"
        )
    device = next(backbone.parameters()).device
    model = copy.deepcopy(backbone)
    model.requires_grad_(False)
    if int(meta["config"]["rank"]) > 0:
        model = _load_lora(model, files, merge, device)
    classifier = ViTClassifier(model, num_classes).to(device)
    if HEAD_WEIGHTS not in files:
        raise ValueError(f"Adapter files lack {HEAD_WEIGHTS}: {sorted(files)}")
    head = load_safetensors_bytes(files[HEAD_WEIGHTS])
    expected = {k: tuple(v.shape) for k, v in classifier.head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in head.items()}
    if found != expected:
        raise ValueError(f"Head weights {found} do not fit this backbone's head {expected}")
    classifier.head.load_state_dict(head)
    classifier.requires_grad_(False)
    return classifier.eval()
