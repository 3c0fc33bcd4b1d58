"""Backbone families: one declaration per Vision Transformer architecture the project can explain.

A family states everything the rest of the code needs to know about an architecture, so no
other module hard-codes module names: the `transformers` model types it accepts, where the
encoder blocks are, each block's pre-attention norm and its linear layers by LoRA role, the
embeddings, the final norm, the prefix tokens that precede the patch tokens (CLS, DINOv2's
registers, DeiT's distillation token; none for SigLIP) and the default pixel normalisation.
Names are candidate tuples because `transformers` renames modules across versions (ViT's
`encoder.layer` / `attention.attention.query` became `layers` / `attention.q_proj` in 5.x).

Adding a family is one `BACKBONES.register(name, BackboneFamily(...))` plus its row in the
parametrised test (tests/core/models/test_families.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xai_kedro.core.common.registry import Registry
from xai_kedro.core.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD

ROLES = ("query", "key", "value", "output", "fc1", "fc2")
# The attribute `load_backbone` sets on a backbone: the (mean, std) its checkpoint expects.
PIXEL_STATS_ATTR = "xai_pixel_stats"
Triple = tuple[float, float, float]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

BACKBONES: Registry[BackboneFamily] = Registry(
    "backbone family",
    setting="backbone.source (config.json model_type)",
    hint="add one with core.models.families.BACKBONES.register(name, BackboneFamily(...))",
)


def _get_path(root: nn.Module, path: str) -> Any:
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


@dataclass(frozen=True)
class BackboneFamily:
    """What the code needs to know about one architecture (see the module docstring).

    model_types: config.json `model_type`s of vision-only checkpoints. full_model_types: those
    of image-text checkpoints (CLIP, SigLIP) whose vision tower `vision_class` is loaded.
    prefix: the fixed prefix tokens in sequence order ("cls", "distillation"); `registers` adds
    `config.num_register_tokens` register tokens after them. layer_takes_mask: the block's
    forward needs an (empty) attention mask argument.
    """

    name: str
    model_types: tuple[str, ...]
    layers: tuple[str, ...]
    pre_norm: tuple[str, ...]
    roles: Mapping[str, tuple[str, ...]]
    embeddings: tuple[str, ...] = ("embeddings",)
    final_norm: tuple[str, ...] = ("layernorm",)
    embed_norm: tuple[str, ...] = ()
    prefix: tuple[str, ...] = ("cls",)
    registers: bool = False
    layer_takes_mask: bool = False
    interpolates: bool = False
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    full_model_types: tuple[str, ...] = ()
    vision_class: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ prefix tokens
    def prefix_tokens(self, config: Any) -> tuple[str, ...]:
        """The kinds of the tokens before the patches, in order (e.g. cls, register, register)."""
        n_reg = int(getattr(config, "num_register_tokens", 0) or 0) if self.registers else 0
        return self.prefix + ("register",) * n_reg

    def num_prefix(self, config: Any) -> int:
        return len(self.prefix_tokens(config))

    @property
    def has_cls(self) -> bool:
        return bool(self.prefix) and self.prefix[0] == "cls"

    # ---------------------------------------------------------------------- modules
    def _first(self, root: nn.Module, paths: tuple[str, ...], what: str) -> Any:
        for path in paths:
            found = _get_path(root, path)
            if found is not None:
                return found
        raise AttributeError(
            f"{type(root).__name__} has none of {list(paths)} ({what} of a {self.name} backbone)"
        )

    def encoder_layers(self, backbone: nn.Module) -> nn.ModuleList:
        return self._first(backbone, self.layers, "encoder blocks")

    def pre_attention_norm(self, layer: nn.Module) -> nn.Module:
        return self._first(layer, self.pre_norm, "pre-attention norm")

    def final_layernorm(self, backbone: nn.Module) -> nn.Module:
        return self._first(backbone, self.final_norm, "final norm")

    def role_module(self, layer: nn.Module, role: str) -> nn.Module:
        """The linear layer playing `role` inside one block (PEFT-wrapped or not)."""
        if role not in self.roles:
            raise ValueError(f"Unknown role {role!r}; expected one of {sorted(self.roles)}")
        modules = dict(layer.named_modules())
        for suffix in self.roles[role]:
            module = modules.get(suffix)
            if module is not None:
                return module
        raise KeyError(
            f"No module for role {role!r} in {type(layer).__name__}: {sorted(modules)[:12]}…"
        )

    def embed(self, backbone: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch + position embeddings with the prefix tokens prepended (and CLIP's pre-norm)."""
        embeddings = self._first(backbone, self.embeddings, "embeddings")
        if self.interpolates:
            tokens = embeddings(pixel_values)
        else:
            size = int(backbone.config.image_size)
            resize = tuple(pixel_values.shape[-2:]) != (size, size)
            tokens = embeddings(pixel_values, interpolate_pos_encoding=resize)
        for path in self.embed_norm:
            norm = _get_path(backbone, path)
            if norm is not None:
                return norm(tokens)
        return tokens

    def call_layer(self, layer: nn.Module, hidden: torch.Tensor) -> Any:
        return layer(hidden, None) if self.layer_takes_mask else layer(hidden)


# ------------------------------------------------------------------------- declarations
_DINOV2_ROLES = {
    "query": ("attention.attention.query", "attention.q_proj"),
    "key": ("attention.attention.key", "attention.k_proj"),
    "value": ("attention.attention.value", "attention.v_proj"),
    "output": ("attention.output.dense", "attention.o_proj"),
    "fc1": ("mlp.fc1",),
    "fc2": ("mlp.fc2",),
}
_VIT_ROLES = {
    **_DINOV2_ROLES,
    "fc1": ("intermediate.dense", "mlp.fc1"),
    "fc2": ("output.dense", "mlp.fc2"),
}
_CLIP_ROLES = {
    "query": ("self_attn.q_proj",),
    "key": ("self_attn.k_proj",),
    "value": ("self_attn.v_proj",),
    "output": ("self_attn.out_proj",),
    "fc1": ("mlp.fc1",),
    "fc2": ("mlp.fc2",),
}
_DINOV2 = {
    "layers": ("encoder.layer",),
    "pre_norm": ("norm1",),
    "roles": _DINOV2_ROLES,
    "interpolates": True,
}
_VIT = {
    "layers": ("layers", "encoder.layer"),
    "pre_norm": ("layernorm_before",),
    "roles": _VIT_ROLES,
}
_TOWER = {
    "layers": ("encoder.layers", "vision_model.encoder.layers"),
    "pre_norm": ("layer_norm1",),
    "roles": _CLIP_ROLES,
    "embeddings": ("embeddings", "vision_model.embeddings"),
    "final_norm": ("post_layernorm", "vision_model.post_layernorm"),
    "layer_takes_mask": True,
}

BACKBONES.register("dinov2", BackboneFamily("dinov2", ("dinov2",), **_DINOV2))
BACKBONES.register(
    "dinov2_with_registers",
    BackboneFamily("dinov2_with_registers", ("dinov2_with_registers",), registers=True, **_DINOV2),
)
BACKBONES.register("vit", BackboneFamily("vit", ("vit",), **_VIT))
BACKBONES.register(
    "deit", BackboneFamily("deit", ("deit",), prefix=("cls", "distillation"), **_VIT)
)
BACKBONES.register(
    "clip_vision",
    BackboneFamily(
        "clip_vision",
        ("clip_vision_model",),
        embed_norm=("pre_layrnorm", "vision_model.pre_layrnorm"),
        mean=CLIP_MEAN,
        std=CLIP_STD,
        full_model_types=("clip",),
        vision_class="CLIPVisionModel",
        **_TOWER,
    ),
)
BACKBONES.register(
    "siglip_vision",
    BackboneFamily(
        "siglip_vision",
        ("siglip_vision_model",),
        prefix=(),
        mean=HALF,
        std=HALF,
        full_model_types=("siglip",),
        vision_class="SiglipVisionModel",
        **_TOWER,
    ),
)


# ------------------------------------------------------------------------------ lookup
def supported_model_types() -> tuple[str, ...]:
    return tuple(
        t for fam in BACKBONES.items() for t in (*fam[1].model_types, *fam[1].full_model_types)
    )


def family_for_model_type(model_type: str | None, source: str = "") -> BackboneFamily:
    """The family accepting `model_type`; a ValueError that lists every registered family."""
    for _, fam in BACKBONES.items():
        if model_type in fam.model_types or model_type in fam.full_model_types:
            return fam
    where = f"Backbone {source!r} is" if source else "The backbone is"
    known = ", ".join(
        f"{n} ({'/'.join(f.model_types + f.full_model_types)})" for n, f in BACKBONES.items()
    )
    raise ValueError(
        f"backbone.source: {where} a {model_type!r} model, not a registered backbone family; "
        f"known: {known}"
    )


def family_of(model: nn.Module) -> BackboneFamily:
    """The family of a backbone, classifier or PEFT-wrapped model (DINOv2 when it has no config)."""
    for module in model.modules():
        config = getattr(module, "config", None)
        model_type = getattr(config, "model_type", None)
        if isinstance(model_type, str):
            return family_for_model_type(model_type)
    return BACKBONES.get("dinov2")


def preprocessing(directory: str | Path | None, family: BackboneFamily) -> dict[str, Any]:
    """Normalisation (mean, std) and input size from `preprocessor_config.json`, else the family's."""
    out: dict[str, Any] = {"mean": family.mean, "std": family.std, "size": None}
    if directory is None:
        return out
    path = Path(directory) / "preprocessor_config.json"
    if not path.is_file():
        return out
    raw = json.loads(path.read_text())
    if raw.get("image_mean") and raw.get("image_std"):
        out["mean"] = tuple(float(v) for v in raw["image_mean"])
        out["std"] = tuple(float(v) for v in raw["image_std"])
    size = raw.get("crop_size") or raw.get("size")
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge")
    out["size"] = int(size) if size else None
    return out


def set_pixel_stats(backbone: nn.Module, mean: Triple, std: Triple) -> nn.Module:
    """Remember on the backbone the (mean, std) it was trained with (copies and moves keep it)."""
    setattr(backbone, PIXEL_STATS_ATTR, (tuple(mean), tuple(std)))
    return backbone


def pixel_stats(model: nn.Module) -> tuple[Triple, Triple]:
    """(mean, std) to normalise `model`'s input with: those `load_backbone` stored (from the
    checkpoint's preprocessor_config.json), else the family's (ImageNet for DINOv2)."""
    for module in model.modules():
        stats = module.__dict__.get(PIXEL_STATS_ATTR)
        if stats is not None:
            return stats
    family = family_of(model)
    return family.mean, family.std
