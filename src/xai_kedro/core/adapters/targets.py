"""LoRA targets named by role (query, value, fc1, fc2) and resolved against the loaded model.

The backbone's family (`core.models.families`) maps each role to its module names: DINOv2's
`attention.q_proj`, ViT's `intermediate.dense`, CLIP's and SigLIP's `self_attn.q_proj`, ...
Both transformers namings work (`attention.attention.query` before 5.18, `attention.q_proj` after).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

from xai_kedro.core.adapters.config import _parse_roles
from xai_kedro.core.models.families import BACKBONES, ROLES, BackboneFamily, family_of

_LAYER_PATTERN = re.compile(
    r"^(?P<prefix>(?:.*\.)?(?:encoder\.layers?|layers))\.(?P<idx>\d+)\.(?P<suffix>.+)$"
)


def _encoder_layer_lists(
    model: nn.Module, family: BackboneFamily
) -> list[tuple[str, nn.ModuleList]]:
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and any(name == path or name.endswith("." + path) for path in family.layers)
    ]
    # a family listing both `layers` and `encoder.layer` must not find a list twice
    return [(n, m) for n, m in found if not any(n != o and o.endswith("." + n) for o, _ in found)]


def resolve_target_modules(model: nn.Module, roles: Iterable[str]) -> list[str]:
    """Full module names (relative to `model`) of every encoder block's linear per role.

    Works for every registered family and both transformers naming schemes.
    """
    roles = tuple(roles) if not isinstance(roles, str) else _parse_roles(roles)
    if not roles:
        raise ValueError("No target roles given")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"Unknown target roles {unknown}; expected some of {list(ROLES)}")
    family = family_of(model)
    layer_lists = _encoder_layer_lists(model, family)
    if not layer_lists:
        raise ValueError(
            f"No {'/'.join(family.layers)} block list in {type(model).__name__} "
            f"(a {family.name} backbone)"
        )
    names: list[str] = []
    for prefix, layers in layer_lists:
        for idx, layer in enumerate(layers):
            for role in roles:
                try:
                    module = family.role_module(layer, role)
                except KeyError as exc:
                    raise ValueError(
                        f"Role {role!r} has no linear layer in block {prefix}.{idx} "
                        f"(looked for {family.roles[role]})"
                    ) from exc
                local = next(n for n, m in layer.named_modules() if m is module)
                names.append(f"{prefix}.{idx}.{local}")
    if not names:
        raise ValueError(f"No target modules for roles {list(roles)} in {type(model).__name__}")
    return names


def _role_of_suffix(suffix: str, family: BackboneFamily | None = None) -> str | None:
    for _, fam in [("", family)] if family else BACKBONES.items():
        for role, suffixes in fam.roles.items():
            if suffix in suffixes:
                return role
    return None
