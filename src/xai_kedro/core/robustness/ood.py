"""The OOD stage in one call: every image under every corruption spec, batched on the device."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

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


# What one `ShiftCache` may hold: base and zoo (48 px, 45 test images per partition, 12 shift
# conditions) need 3.7 MB; a 224 px crop takes 147 KiB an image and condition, so this holds
# about 1,800 of those and the rest is recomputed.
SHIFT_CACHE_BYTES = 256 * 2**20


class ShiftCache:
    """The shifted pixels of one partition's batches, so each image-level shift is computed
    once per image rather than once per adapter.

    The adapter loop (`spark.adapter_udfs`) sends every batch of a partition through one adapter,
    then through the next; a shift is a pure function of (image, spec, seed), so the second adapter
    onwards reuses the first one's pixels. Shifted pixels are known by the batch's image ids and
    shape (the Bronze pixels of those ids, centre-cropped to that size) and the spec, for one base
    seed and synthetic world. Bounded: entries stop being added at ``max_bytes`` (the rest is
    recomputed, the same pixels), and image ids not seen before, once a batch has come round
    again, are a new partition: the cache starts afresh."""

    def __init__(self, max_bytes: int = SHIFT_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._shifted: dict[tuple, np.ndarray] = {}
        self._batches: set[tuple[str, ...]] = set()
        self._batch: tuple[str, ...] = ()
        self._repeating = False
        self._seeding: tuple = ()

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
        """`shift_images(spec, ...)`, computed at most once per batch while the budget lasts."""
        batch = tuple(ids)
        self._enter(batch, (base_seed, world))
        key = (batch, images.shape, spec)
        if key in self._shifted:
            return self._shifted[key]
        shifted = shift_images(spec, images, labels, masks, ids, base_seed=base_seed, world=world)
        if self.nbytes + shifted.nbytes <= self.max_bytes:
            self._shifted[key] = shifted
            self.nbytes += shifted.nbytes
        return shifted

    def _enter(self, batch: tuple[str, ...], seeding: tuple) -> None:
        """Note the batch being evaluated; forget everything when a new partition starts (or
        the seed or synthetic world change)."""
        if seeding != self._seeding:
            self._clear()
            self._seeding = seeding
        if batch == self._batch:
            return
        if batch in self._batches:
            self._repeating = True  # the next adapter has started on the same batches
        elif self._repeating:
            self._clear()
        self._batches.add(batch)
        self._batch = batch

    def _clear(self) -> None:
        self._shifted, self._batches, self.nbytes, self._repeating = {}, set(), 0, False


@dataclass(frozen=True)
class OODConditions:
    """What one OOD table evaluates, built once per stage and the same for every adapter and
    batch: the corruption grid (``specs``, family `reference`), the image-level ``shifts``
    (backgrounds need the synthetic ``world``), whether the unshifted images come first
    (``include_clean``, `silver_source`), the seed of every draw and the forward's settings."""

    specs: tuple[CorruptionSpec, ...] = ()
    shifts: tuple[ShiftSpec, ...] = ()
    include_clean: bool = False
    base_seed: int = 0
    world: SyntheticConfig | None = None
    input_size: int | None = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "specs", tuple(self.specs))
        object.__setattr__(self, "shifts", tuple(self.shifts))

    @property
    def rows_per_image(self) -> int:
        """Rows `evaluate_corruptions` returns per image (one per condition)."""
        return len(self.specs) + len(self.shifts) + int(self.include_clean)


def evaluate_corruptions(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    image_ids: Sequence[str],
    conditions: OODConditions,
    *,
    device: str = "cpu",
    masks: Sequence[np.ndarray | None] | None = None,
    cache: ShiftCache | None = None,
) -> pd.DataFrame:
    """`silver_ood` rows (without adapter_id): seeds depend on (image, corruption, severity)
    only, so every adapter sees the very same corrupted pixels. With ``include_clean`` the
    unshifted images come first (condition `clean`/`none`), as `silver_source` needs. The
    reference grid is evaluated exactly as before; each image-level shift (`core.robustness.
    shifts`, needing ``masks`` for backgrounds) follows as its own block of rows; ``cache``
    (one per partition, `ShiftCache`) reuses the shifted pixels across adapters."""
    c = conditions
    ids = list(image_ids)
    kwargs = {"input_size": c.input_size, "device": device, "batch_size": c.batch_size}
    parts = []
    if c.specs or c.include_clean:
        parts.append(_reference_rows(model, images, labels, ids, c, kwargs))
    cache = cache or ShiftCache(max_bytes=0)
    for spec in c.shifts:
        shifted = cache.get(spec, images, labels, masks, ids, c.base_seed, c.world)
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
    conditions: OODConditions,
    kwargs: dict,
) -> pd.DataFrame:
    """The corruption grid (family `reference`): one forward per chunk over every condition."""
    seed = conditions.base_seed

    def seeds_for(transform: TransformSpec) -> np.ndarray:
        return np.array(
            [corruption_seed(i, transform.corruption, transform.severity, seed) for i in ids],
            dtype=np.int64,
        )

    clean = [CLEAN_CONDITION] if conditions.include_clean else []
    transforms = clean + as_transforms(conditions.specs)
    rows = evaluate_transforms(model, images, labels, transforms, seeds=seeds_for, **kwargs)
    rows.insert(0, "image_id", np.tile(np.asarray(ids, dtype=object), len(transforms)))
    rows.insert(1, "shift_family", REFERENCE_FAMILY)
    return rows
