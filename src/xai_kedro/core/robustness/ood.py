"""The OOD stage in one call: every image under every corruption spec, batched on the device."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from xai_kedro.core.models.inference import TransformSpec, evaluate_transforms
from xai_kedro.core.robustness.presets import CorruptionSpec, apply_spec, corruption_seed

# The unshifted condition of `silver_source` (meta_learning.accuracy_estimation.clean_shift).
CLEAN_CONDITION = TransformSpec("clean", "none", 0.0, None)


def as_transforms(specs: Sequence[CorruptionSpec]) -> list[TransformSpec]:
    return [
        TransformSpec(
            spec.corruption, spec.severity, spec.value, functools.partial(apply_spec, spec)
        )
        for spec in specs
    ]


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
) -> pd.DataFrame:
    """`silver_ood` rows (without adapter_id): seeds depend on (image, corruption, severity)
    only, so every adapter sees the very same corrupted pixels. ``include_clean`` adds the
    unshifted images first (condition `clean`/`none`), as `silver_source` needs."""
    ids = list(image_ids)

    def seeds_for(transform: TransformSpec) -> np.ndarray:
        return np.array(
            [corruption_seed(i, transform.corruption, transform.severity, base_seed) for i in ids],
            dtype=np.int64,
        )

    transforms = ([CLEAN_CONDITION] if include_clean else []) + as_transforms(specs)
    rows = evaluate_transforms(
        model,
        images,
        labels,
        transforms,
        input_size=input_size,
        device=device,
        batch_size=batch_size,
        seeds=seeds_for,
    )
    rows.insert(0, "image_id", np.tile(np.asarray(ids, dtype=object), len(transforms)))
    return rows
