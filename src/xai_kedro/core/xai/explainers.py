"""The explainer registry: name -> batched function (model, tokens, **settings) -> (logits, heatmap).

Every explainer takes the embedded token sequence [B, P + N, D] (so the engine embeds once and
reuses the embedding for token-drop perturbations) and returns the clean logits [B, C] and a
patch heatmap [B, N]: CLS and register tokens excluded, non-negative, rows sum to 1. Class-specific
explainers explain the clean predicted class (label-free, as in RISE).

An explainer is declared once, with `@register_explainer("name")` (like timm's `register_model`):
its keyword-only arguments with defaults are its settings, which `get_explainer(name, **settings)`
checks and binds. Adding one touches its source file, its config block and its test: the
registry finds every module of `core/xai/` that declares explainers and imports it on first
lookup.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from xai_kedro.core.common.registry import Registry
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.attention import (
    capture_layer_inputs,
    last_layer_cls_attention,
    rollout_from_inputs,
)


class Explainer(Protocol):
    """(model, embedded tokens [B, P + N, D]) -> (logits [B, C], heatmap [B, N])."""

    def __call__(
        self, model: ViTClassifier, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


def _declaring_modules() -> tuple[str, ...]:
    """The modules of this package that declare explainers, found rather than listed: a new
    explainer module under `core/xai/` registers without an entry here. Reading the sources
    (not importing every module) keeps matplotlib and the engine out of a registry lookup."""
    here = Path(__file__)
    return tuple(
        f"{__package__}.{path.stem}"
        for path in sorted(here.parent.glob("*.py"))
        if path != here and _DECLARATION.search(path.read_text(encoding="utf-8"))
    )


_DECLARATION = re.compile(r"^@register_explainer\(", re.MULTILINE)

# name -> the registered function; its keyword-only defaults are its settings.
EXPLAINERS: Registry[Callable[..., tuple[torch.Tensor, torch.Tensor]]] = Registry(
    "explainer", setting="xai_silver.engine.explainer", builtins=_declaring_modules()
)


def register_explainer(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register `fn(model, tokens, *, setting=default, ...)` under `name`."""

    def decorate(fn: Callable) -> Callable:
        params = list(inspect.signature(fn).parameters.values())
        positional = [p for p in params if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        if len(positional) != 2:
            raise TypeError(f"explainer {name!r} must take (model, tokens, *, settings...)")
        missing = [p.name for p in params[2:] if p.default is inspect.Parameter.empty]
        if missing:
            raise TypeError(f"explainer {name!r}: settings {missing} need defaults")
        return EXPLAINERS.register(name, fn)

    return decorate


def explainer_settings(name: str) -> dict[str, Any]:
    """The settings of explainer `name` with their defaults."""
    fn = EXPLAINERS.get(name)
    params = list(inspect.signature(fn).parameters.values())[2:]
    return {p.name: p.default for p in params}


def get_explainer(name: str, **settings: Any) -> Explainer:
    """The explainer `name` with `settings` bound; an unknown setting is an error naming it."""
    fn = EXPLAINERS.get(name)
    known = explainer_settings(name)
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(
            f"Unknown settings {unknown} for explainer {name!r}; expected some of {sorted(known)}"
        )
    for key, value in settings.items():
        _check_type(name, key, value, known[key])
    return functools.partial(fn, **settings) if settings else fn


def _check_type(name: str, key: str, value: Any, default: Any) -> None:
    """A setting must have its default's type (an int is a valid float; a bool is no number)."""
    kind = type(default)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise ValueError(
            f"explainer {name!r}: setting {key!r} must be {kind.__name__}, "
            f"got {type(value).__name__} {value!r}"
        )


def normalised_heatmap(scores: torch.Tensor) -> torch.Tensor:
    """Patch scores [B, N] -> heatmap: negatives clipped to 0, rows sum to 1; a row with no
    positive score carries no ranking and becomes uniform."""
    positive = scores.float().clamp_min(0.0)
    total = positive.sum(dim=1, keepdim=True)
    uniform = torch.full_like(positive, 1.0 / max(positive.shape[1], 1))
    return torch.where(
        total > 0, positive / total.clamp_min(torch.finfo(total.dtype).tiny), uniform
    )


def configured_explainers(block: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Explainer]:
    """Parameters block {name: {setting: value} or None} -> {name: bound explainer}, in order."""
    if not block:
        raise ValueError("the explainers block is empty; name at least one explainer")
    return {name: get_explainer(name, **dict(settings or {})) for name, settings in block.items()}


@register_explainer("attention")
def attention_explainer(
    model: ViTClassifier, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and last-layer CLS attention from the same forward pass."""
    hidden, last_input = model.encode(tokens, return_last_input=True)
    return model.head_logits(hidden), last_layer_cls_attention(model, last_input)


@register_explainer("rollout")
def rollout_explainer(
    model: ViTClassifier, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and attention rollout; layer inputs are captured from the logits' own forward."""
    with capture_layer_inputs(model) as inputs:
        logits = model.forward_tokens(tokens)
    return logits, rollout_from_inputs(model, inputs)


def attention_rollout(model: ViTClassifier, pixel_values: torch.Tensor) -> torch.Tensor:
    """Rollout heatmap [B, N] of normalised pixel input [B, 3, S, S]."""
    return rollout_explainer(model, model.embed(pixel_values))[1]
