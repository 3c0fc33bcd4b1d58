"""Corruption specs: the named presets, config overrides, and per-image seeds.

``reference`` is the reference experiment's grid (Lacavalla, Knowledge Injection via XAI: noise
sigma 15/40/80 on 0..255, PIL blur radius 1/3/6, PIL contrast 0.7/0.4/0.15); ``imagenet_c``
follows Hendrycks & Dietterich 2019 (severities 1..5 of their make_imagenet_c.py).
"""

from __future__ import annotations

import hashlib
import logging
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from xai_kedro.core.common.registry import UnknownNameError
from xai_kedro.core.common.settings import check_keys
from xai_kedro.core.robustness.corruptions import CORRUPTIONS

logger = logging.getLogger(__name__)

SEED_BITS = 63


@dataclass(frozen=True)
class CorruptionSpec:
    """One (corruption, severity) cell: the reported names plus the registry function and value."""

    corruption: str
    severity: str
    param: str
    value: float
    fn_name: str


def _preset(
    table: Mapping[str, tuple[str, str, Sequence[float]]], levels: Sequence[str]
) -> tuple[CorruptionSpec, ...]:
    return tuple(
        CorruptionSpec(corruption, level, param, float(value), fn_name)
        for corruption, (fn_name, param, values) in table.items()
        for level, value in zip(levels, values, strict=True)
    )


REFERENCE_LEVELS = ("shallow", "medium", "heavy")
IMAGENET_C_LEVELS = ("1", "2", "3", "4", "5")

PRESETS: dict[str, tuple[CorruptionSpec, ...]] = {
    # the reference experiment: sigma on 0..255, PIL GaussianBlur radius, PIL Contrast factor
    "reference": _preset(
        {
            "gaussian_noise": ("gaussian_noise", "sigma", (15.0, 40.0, 80.0)),
            "gaussian_blur": ("gaussian_blur", "radius", (1.0, 3.0, 6.0)),
            "contrast": ("contrast", "factor", (0.7, 0.4, 0.15)),
        },
        REFERENCE_LEVELS,
    ),
    # Hendrycks & Dietterich 2019, make_imagenet_c.py severities 1..5
    "imagenet_c": _preset(
        {
            "gaussian_noise": ("imagenet_c_gaussian_noise", "c", (0.08, 0.12, 0.18, 0.26, 0.38)),
            "gaussian_blur": ("imagenet_c_gaussian_blur", "c", (1.0, 2.0, 3.0, 4.0, 6.0)),
            "contrast": ("imagenet_c_contrast", "c", (0.4, 0.3, 0.2, 0.1, 0.05)),
        },
        IMAGENET_C_LEVELS,
    ),
}

_OVERRIDE_REQUIRED = ("corruption", "severity", "value")
_OVERRIDE_OPTIONAL = ("fn", "param")
_PROBE_SHAPE = (1, 3, 4, 4)  # tiny dry run so a bad value fails at config time, not mid-stage


def _spec_from_entry(
    entry: Mapping[str, object], position: int, replaced: CorruptionSpec | None
) -> CorruptionSpec:
    """Validate one YAML entry {corruption, severity, value, fn?, param?} into a spec.

    Missing fn/param are taken from the spec it replaces, else fn = corruption, param = "value".
    """
    check_keys(entry, (*_OVERRIDE_REQUIRED, *_OVERRIDE_OPTIONAL), f"ood.corruptions[{position}]")
    missing = [k for k in _OVERRIDE_REQUIRED if k not in entry]
    if missing:
        raise ValueError(
            f"corruption override #{position} {dict(entry)}: missing keys {missing}; "
            f"expected {_OVERRIDE_REQUIRED} + optional {_OVERRIDE_OPTIONAL}"
        )
    fn_name = str(entry.get("fn", replaced.fn_name if replaced else entry["corruption"]))
    try:
        CORRUPTIONS.get(fn_name)
    except UnknownNameError as exc:
        raise UnknownNameError(f"corruption override #{position}: {exc}") from None
    value = entry["value"]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"corruption override #{position}: value must be a number, got {value!r}")
    return CorruptionSpec(
        corruption=str(entry["corruption"]),
        severity=str(entry["severity"]),
        param=str(entry.get("param", replaced.param if replaced else "value")),
        value=float(value),
        fn_name=fn_name,
    )


def build_specs(
    preset: str | None = "reference", overrides: Iterable[Mapping[str, object]] | None = None
) -> list[CorruptionSpec]:
    """Preset specs, then config entries: an entry with an existing (corruption, severity)
    replaces it in place, any other is appended. ``preset=None`` starts from an empty list.

    Every spec is dry-run on a 4x4 image so a bad value (e.g. negative sigma) fails here.
    """
    if preset is None:
        specs: list[CorruptionSpec] = []
    elif preset in PRESETS:
        specs = list(PRESETS[preset])
    else:
        raise ValueError(f"unknown corruption preset {preset!r}; known: {sorted(PRESETS)} or None")
    entries = list(overrides or [])
    for position, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise TypeError(f"corruption override #{position} must be a mapping, got {entry!r}")
        keys = [(s.corruption, s.severity) for s in specs]
        key = (str(entry.get("corruption")), str(entry.get("severity")))
        at = keys.index(key) if key in keys else None
        spec = _spec_from_entry(entry, position, None if at is None else specs[at])
        if at is None:
            specs.append(spec)
        else:
            specs[at] = spec
    if not specs:
        raise ValueError("no corruption specs: give a preset or at least one override entry")
    probe = torch.full(_PROBE_SHAPE, 128.0)
    probe_seeds = torch.zeros(_PROBE_SHAPE[0], dtype=torch.int64)
    for spec in specs:
        apply_spec(spec, probe, probe_seeds)
    logger.debug("corruption specs (%s + %d overrides): %s", preset, len(entries), specs)
    return specs


def corruption_seed(image_id: str, corruption: str, severity: str, base_seed: int = 0) -> int:
    """Stable non-negative 63-bit seed from sha256(base_seed|image_id|corruption|severity).

    Independent of the adapter, so every adapter sees the very same corrupted image.
    """
    key = f"{int(base_seed)}|{image_id}|{corruption}|{severity}".encode()
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


def spec_seeds(
    image_ids: Sequence[str], spec: CorruptionSpec, base_seed: int = 0, device: str = "cpu"
) -> torch.Tensor:
    """int64 seeds [B] for a batch of images under one spec (``corruption_seed`` per image)."""
    values = [corruption_seed(i, spec.corruption, spec.severity, base_seed) for i in image_ids]
    return torch.tensor(values, dtype=torch.int64, device=device)


def apply_spec(spec: CorruptionSpec, x255: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Run ``spec``'s registry function at its value on the batch."""
    return CORRUPTIONS.get(spec.fn_name)(x255, spec.value, seeds)
