"""Image-level shifts of the OOD stage: a registry beside the corruption registry, in families.

A corruption (`core.robustness.corruptions`) is a batched tensor op on the resized model input; a
*shift* acts on one stored image before it is resized, because it needs what only the source
knows: the object mask and the label (the `background` family composites the object onto a
background it was not trained with) or a package that works on uint8 HxWx3 arrays (the
`imagenet_c` family, through `imagecorruptions`). Every shift has the signature
``fn(image, value, seed, context) -> image``: uint8 [H, W, 3] in and out, ``value`` the severity
parameter, ``seed`` one int per (image, family, shift, severity), ``context`` the image's mask,
label and the source's world (`ShiftContext`). It is a pure function of its arguments.

`silver_ood` carries the family of every row (`shift_family`): ``reference`` for the corruption
grid (`ood.preset` / `ood.corruptions`, unchanged), ``background`` and ``imagenet_c`` for the
entries of `ood.shifts`.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xai_kedro.core.common.registry import Registry, UnknownNameError
from xai_kedro.core.common.settings import SettingsError, check_keys
from xai_kedro.core.data.synthetic import SyntheticConfig
from xai_kedro.core.robustness.columns import REFERENCE_FAMILY

__all__ = ["REFERENCE_FAMILY", "SHIFTS", "ShiftContext", "ShiftSpec", "register_shift"]
SEED_BITS = 63


@dataclass(frozen=True)
class ShiftContext:
    """What a shift may know about one image besides its pixels: its object mask (HxW, nonzero =
    object; None when the source has none), its label, and the synthetic world it comes from
    (None for other sources)."""

    mask: np.ndarray | None
    label: int
    world: SyntheticConfig | None = None


ShiftFn = Callable[[np.ndarray, float, int, ShiftContext], np.ndarray]


@dataclass(frozen=True)
class ShiftEntry:
    """A registered shift: its function and the family it belongs to."""

    family: str
    fn: ShiftFn


SHIFTS: Registry[ShiftEntry] = Registry("shift", setting="ood.shifts[].shift")


def register_shift(family: str, name: str) -> Callable[[ShiftFn], ShiftFn]:
    """Declare shift ``name`` of ``family``; `ood.shifts` entries name it."""

    def decorator(fn: ShiftFn) -> ShiftFn:
        SHIFTS.register(name, ShiftEntry(family, fn))
        return fn

    return decorator


@dataclass(frozen=True)
class ShiftSpec:
    """One (shift, severity) cell of `silver_ood`: its family, names and parameter value."""

    family: str
    shift: str
    severity: str
    value: float


def _ensure_builtins() -> None:
    """Import the modules that register the built-in shifts (they import this module)."""
    from xai_kedro.core.robustness import background, imagenet_c  # noqa: F401


def shift_entry(name: str) -> ShiftEntry:
    _ensure_builtins()
    return SHIFTS.get(name)


def shift_names() -> list[str]:
    _ensure_builtins()
    return list(SHIFTS.names())


_SPEC_KEYS = ("shift", "severities", "values")


def build_shift_specs(entries: Iterable[Mapping[str, object]] | None) -> list[ShiftSpec]:
    """`ood.shifts` entries {shift, severities, values?} -> specs; ``values`` defaults to the
    severities read as numbers (ImageNet-C's 1..5)."""
    specs: list[ShiftSpec] = []
    for position, entry in enumerate(entries or []):
        path = f"ood.shifts[{position}]"
        if not isinstance(entry, Mapping):
            raise TypeError(f"{path} must be a mapping, got {entry!r}")
        check_keys(entry, _SPEC_KEYS, path)
        if "shift" not in entry or "severities" not in entry:
            raise ValueError(f"{path}: needs 'shift' and 'severities', got {dict(entry)}")
        try:
            family = shift_entry(str(entry["shift"])).family
        except UnknownNameError as exc:
            raise UnknownNameError(f"{path}: {exc}") from None
        severities = [str(s) for s in entry["severities"]]  # type: ignore[union-attr]
        values = list(entry.get("values", severities))  # type: ignore[arg-type]
        if len(values) != len(severities):
            raise ValueError(f"{path}: {len(severities)} severities but {len(values)} values")
        for severity, value in zip(severities, values, strict=True):
            number = _number(value, f"{path}.values")
            specs.append(ShiftSpec(family, str(entry["shift"]), severity, number))
    keys = [(s.family, s.shift, s.severity) for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"ood.shifts: a (shift, severity) cell is listed twice: {keys}")
    return specs


def _number(value: object, path: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{path}: {value!r} is not a number")
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        raise ValueError(f"{path}: {value!r} is not a number") from None


def shift_seed(image_id: str, spec: ShiftSpec, base_seed: int = 0) -> int:
    """Stable non-negative 63-bit seed from sha256(base_seed|image_id|family|shift|severity):
    independent of the adapter, so every adapter sees the very same shifted image."""
    key = f"{int(base_seed)}|{image_id}|{spec.family}|{spec.shift}|{spec.severity}".encode()
    digest = hashlib.sha256(key).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


def apply_shift(spec: ShiftSpec, image: np.ndarray, seed: int, context: ShiftContext) -> np.ndarray:
    """Shift one uint8 [H, W, 3] image; checks that the result keeps its shape and dtype."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"{spec.shift}: needs a uint8 [H, W, 3] image, got {image.dtype} {image.shape}"
        )
    out = np.asarray(shift_entry(spec.shift).fn(image, spec.value, int(seed), context))
    if out.shape != image.shape or out.dtype != np.uint8:
        raise ValueError(
            f"{spec.shift}: returned {out.dtype} {out.shape} for a uint8 {image.shape} image"
        )
    return out


def shift_images(
    spec: ShiftSpec,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    masks: Sequence[np.ndarray | None] | None,
    image_ids: Sequence[str],
    *,
    base_seed: int = 0,
    world: SyntheticConfig | None = None,
) -> np.ndarray:
    """A batch [N, H, W, 3] under one spec, each image seeded by `shift_seed`."""
    out = np.empty_like(images)
    for i, image_id in enumerate(image_ids):
        mask = None if masks is None else masks[i]
        context = ShiftContext(mask, int(labels[i]), world)
        out[i] = apply_shift(spec, images[i], shift_seed(image_id, spec, base_seed), context)
    return out


NEEDS_WORLD = ("counter_biased",)


def load_world(
    manifest_path: str | Path | None, shifts: Sequence[ShiftSpec] = ()
) -> SyntheticConfig | None:
    """The synthetic world the background shifts draw from: the config the synthetic source
    wrote beside its images (`manifest.json`), so the shifts always match the generated data.
    None when no path is set or the source is not synthetic; a shift that needs the world
    (``counter_biased``) then fails here, before any work."""
    world = None
    if manifest_path and Path(manifest_path).is_file():
        payload = json.loads(Path(manifest_path).read_text())
        world = SyntheticConfig.from_params(payload["config"])
    needing = sorted({s.shift for s in shifts if s.shift in NEEDS_WORLD})
    if world is None and needing:
        raise SettingsError(
            f"ood.shifts: {', '.join(needing)} needs the synthetic world, but ood.world "
            f"({manifest_path!r}) is not a synthetic source's manifest.json"
        )
    return world
