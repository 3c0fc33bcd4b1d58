"""The OOD stage in one call: every image under every corruption spec, batched on the device."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from xai_kedro.core.data.synthetic import SyntheticConfig
from xai_kedro.core.models.inference import TransformSpec, evaluate_transforms
from xai_kedro.core.robustness.presets import CorruptionSpec, apply_spec, corruption_seed
from xai_kedro.core.robustness.shifts import REFERENCE_FAMILY, ShiftSpec, shift_images

# The unshifted condition of `silver_source` (meta_learning.accuracy_estimation.clean_shift).
CLEAN_CONDITION = TransformSpec("clean", "none", 0.0, None)


def as_transforms(specs: Sequence[CorruptionSpec]) -> list[TransformSpec]:
    return [
        TransformSpec(
            spec.corruption, spec.severity, spec.value, functools.partial(apply_spec, spec)
        )
        for spec in specs
    ]


class ShiftCache:
    """The shifted pixels of the last batch seen: every adapter of a partition evaluates the
    same Bronze batch, and a shift is a pure function of (image, spec, seed), so it is computed
    once per batch rather than once per adapter."""

    def __init__(self) -> None:
        self._batch: tuple = ()
        self._shifted: dict[ShiftSpec, np.ndarray] = {}

    def get(
        self,
        spec: ShiftSpec,
        images: np.ndarray,
        labels: np.ndarray,
        masks: Sequence[np.ndarray | None] | None,
        ids: list[str],
        base_seed: int,
        world: SyntheticConfig | None,
    ) -> np.ndarray:
        batch = (tuple(ids), images.shape, base_seed, world)
        if batch != self._batch:
            self._batch, self._shifted = batch, {}
        if spec not in self._shifted:
            self._shifted[spec] = shift_images(
                spec, images, labels, masks, ids, base_seed=base_seed, world=world
            )
        return self._shifted[spec]


def evaluate_corruptions(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    image_ids: Sequence[str],
    specs: Sequence[CorruptionSpec],
    *,
    input_size: int | None = None,
    device: str = "cpu",
    batch_size: int = 256,
    base_seed: int = 0,
    include_clean: bool = False,
    shifts: Sequence[ShiftSpec] = (),
    masks: Sequence[np.ndarray | None] | None = None,
    world: SyntheticConfig | None = None,
    cache: ShiftCache | None = None,
) -> pd.DataFrame:
    """`silver_ood` rows (without adapter_id): seeds depend on (image, corruption, severity)
    only, so every adapter sees the very same corrupted pixels. ``include_clean`` adds the
    unshifted images first (condition `clean`/`none`), as `silver_source` needs. The reference
    grid (``specs``, family `reference`) is evaluated exactly as before; each image-level shift
    of ``shifts`` (`core.robustness.shifts`, needing ``masks`` and ``world`` for backgrounds)
    follows as its own block of rows; ``cache`` reuses the shifted pixels across adapters."""
    ids = list(image_ids)
    kwargs = {"input_size": input_size, "device": device, "batch_size": batch_size}
    parts = []
    if specs or include_clean:
        parts.append(
            _reference_rows(model, images, labels, ids, specs, base_seed, include_clean, kwargs)
        )
    for spec in shifts:
        shifted = shift_images(spec, images, labels, masks, ids, base_seed=base_seed, world=world)
        condition = TransformSpec(spec.shift, spec.severity, spec.value, None)
        rows = evaluate_transforms(model, shifted, labels, [condition], **kwargs)
        rows.insert(0, "image_id", np.asarray(ids, dtype=object))
        rows.insert(1, "shift_family", spec.family)
        parts.append(rows)
    if not parts:
        raise ValueError("no OOD conditions: give corruption specs, shifts or include_clean")
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _reference_rows(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    ids: list[str],
    specs: Sequence[CorruptionSpec],
    base_seed: int,
    include_clean: bool,
    kwargs: dict,
) -> pd.DataFrame:
    """The corruption grid (family `reference`): one forward per chunk over every condition."""

    def seeds_for(transform: TransformSpec) -> np.ndarray:
        return np.array(
            [corruption_seed(i, transform.corruption, transform.severity, base_seed) for i in ids],
            dtype=np.int64,
        )

    transforms = ([CLEAN_CONDITION] if include_clean else []) + as_transforms(specs)
    rows = evaluate_transforms(model, images, labels, transforms, seeds=seeds_for, **kwargs)
    rows.insert(0, "image_id", np.tile(np.asarray(ids, dtype=object), len(transforms)))
    rows.insert(1, "shift_family", REFERENCE_FAMILY)
    return rows
