"""LoRA targets named by role (query, value, fc1, fc2) and resolved against the loaded model.

Both transformers namings work (`attention.attention.query` before 5.18, `attention.q_proj` after).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

from xai_kedro.core.adapters.config import _parse_roles
from xai_kedro.core.models.classifier import ROLE_SUFFIXES, role_module

_LAYER_PATTERN = re.compile(r"^(?P<prefix>(?:.*\.)?encoder\.layer)\.(?P<idx>\d+)\.(?P<suffix>.+)$")


def _encoder_layer_lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and (name == "encoder.layer" or name.endswith(".encoder.layer"))
    ]


def resolve_target_modules(model: nn.Module, roles: Iterable[str]) -> list[str]:
    """Full module names (relative to `model`) of every encoder block's linear per role.

    Works for both transformers naming schemes through `classifier.role_module`.
    """
    roles = tuple(roles) if not isinstance(roles, str) else _parse_roles(roles)
    if not roles:
        raise ValueError("No target roles given")
    unknown = sorted(set(roles) - set(ROLE_SUFFIXES))
    if unknown:
        raise ValueError(f"Unknown target roles {unknown}; expected some of {list(ROLE_SUFFIXES)}")
    layer_lists = _encoder_layer_lists(model)
    if not layer_lists:
        raise ValueError(
            f"No `encoder.layer` block list in {type(model).__name__}; is this a DINOv2 model?"
        )
    names: list[str] = []
    for prefix, layers in layer_lists:
        for idx, layer in enumerate(layers):
            for role in roles:
                try:
                    module = role_module(layer, role)
                except KeyError as exc:
                    raise ValueError(
                        f"Role {role!r} has no linear layer in block {prefix}.{idx} "
                        f"(looked for {ROLE_SUFFIXES[role]})"
                    ) from exc
                local = next(n for n, m in layer.named_modules() if m is module)
                names.append(f"{prefix}.{idx}.{local}")
    if not names:
        raise ValueError(f"No target modules for roles {list(roles)} in {type(model).__name__}")
    return names


def _role_of_suffix(suffix: str) -> str | None:
    for role, suffixes in ROLE_SUFFIXES.items():
        if suffix in suffixes:
            return role
    return None
