"""What a generator receives and returns, the generator registry, and the checks on its output.

`core.injection.generators` holds the built-in generators; a user's generator is one function
decorated with `register_generator` in a module listed under
`knowledge_injection.generator.plugins`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.common.registry import Registry

logger = logging.getLogger(__name__)


PROVENANCE_COLUMNS = ("motivated_by", "source_image_id", "background_image_id", "details")
FAILURE_INPUT_COLUMNS = ("image_id", "label", "confuser")

# ------------------------------------------------------------------------------ interfaces
Fetch = Callable[[Sequence[str]], tuple[np.ndarray, list[np.ndarray | None] | None]]


@dataclass(frozen=True)
class ImagePool:
    """Training-split images a generator may draw pixels from: ids, labels and whether each has
    an object mask up front; pixels (uint8 [n, H, W, 3]) and masks (0/1 [H, W]) on demand."""

    image_ids: tuple[str, ...]
    labels: np.ndarray
    has_mask: np.ndarray
    fetch: Fetch
    image_size: int

    @classmethod
    def from_arrays(
        cls,
        image_ids: Sequence[str],
        labels: Sequence[int],
        images: np.ndarray,
        masks: Sequence[np.ndarray | None] | None = None,
    ) -> ImagePool:
        """A pool held in memory (small data, tests)."""
        ids = tuple(str(i) for i in image_ids)
        index = {image_id: i for i, image_id in enumerate(ids)}
        images = np.asarray(images, dtype=np.uint8)
        if images.ndim != 4 or len(images) != len(ids):
            raise ValueError(f"pool images must be [{len(ids)}, H, W, 3], got {images.shape}")
        mask_list = list(masks) if masks is not None else [None] * len(ids)

        def fetch(wanted: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray | None] | None]:
            rows = [index[w] for w in wanted]
            return images[rows], [mask_list[r] for r in rows] if masks is not None else None

        return cls(
            ids,
            np.asarray(labels, dtype=np.int64),
            np.array([m is not None for m in mask_list], dtype=bool),
            fetch,
            int(images.shape[1]),
        )

    def ids_of_class(self, label: int, with_mask: bool = False) -> list[str]:
        keep = self.labels == int(label)
        if with_mask:
            keep &= self.has_mask
        return [i for i, k in zip(self.image_ids, keep, strict=True) if k]


@dataclass(frozen=True)
class GenerationRequest:
    """What a generator gets for one adapter's failures.

    failures: one row per failing validation sample: image_id, label, confuser (the class whose
        evidence the model borrows), kind, confidence, object_attention_share, deletion_auc,
        background (when known); never pixels.
    pool: the training split.
    class_names: label -> name.
    per_failure: images to generate per failing sample.
    params: the generator's own settings (`knowledge_injection.generator.params`).
    source: the ingestion source parameters (kind, and the synthetic config for kind synthetic).
    seed: every random choice derives from it.
    """

    failures: pd.DataFrame
    pool: ImagePool
    class_names: tuple[str, ...]
    per_failure: int
    params: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass(frozen=True)
class GeneratedImages:
    """New training images: uint8 [M, H, W, 3], labels [M], optional 0/1 masks, and M provenance
    rows (:data:`PROVENANCE_COLUMNS`; `details` a JSON-ready dict of the generator's choices)."""

    images: np.ndarray
    labels: np.ndarray
    masks: list[np.ndarray | None] | None
    provenance: pd.DataFrame


Generator = Callable[[GenerationRequest], GeneratedImages]


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    fn: Generator
    requires_masks: bool
    description: str


GENERATORS: Registry[GeneratorSpec] = Registry(
    "generator",
    setting="knowledge_injection.generator.name",
    builtins=("xai_kedro.core.injection.generators",),
    hint="register your own with @register_generator and list its module under "
    "knowledge_injection.generator.plugins",
)


def register_generator(
    name: str, *, requires_masks: bool = False, description: str = ""
) -> Callable[[Generator], Generator]:
    """Decorator adding a generator to the registry under `name` (a duplicate is an error)."""

    def add(fn: Generator) -> Generator:
        GENERATORS.register(
            name, GeneratorSpec(name, fn, requires_masks, description or fn.__doc__ or "")
        )
        return fn

    return add


def get_generator(name: str) -> GeneratorSpec:
    """The registered generator `name`; an unknown name is an error that lists the known ones."""
    return GENERATORS.get(name)


def generate(name: str, request: GenerationRequest) -> GeneratedImages:
    """Run generator `name` on `request` after checking what it needs; check what it returns."""
    spec = get_generator(name)
    missing = sorted(set(FAILURE_INPUT_COLUMNS) - set(request.failures.columns))
    if missing:
        raise ValueError(f"generation request failures lack columns {missing}")
    if request.per_failure < 1:
        raise ValueError(
            f"knowledge_injection.generator.per_failure must be >= 1, got {request.per_failure}"
        )
    if spec.requires_masks:
        needed = set(request.failures["label"].astype(int))
        masked = {int(k) for k in request.pool.labels[request.pool.has_mask]}
        if not request.pool.has_mask.any():
            raise ValueError(
                f"generator {name!r} needs object masks, but the source's training images have "
                "none; use a source with masks (e.g. Oxford-IIIT Pet trimaps, the synthetic "
                "source) or a generator that needs no masks"
            )
        if not needed <= masked:
            names = [request.class_names[k] for k in sorted(needed - masked)]
            raise ValueError(
                f"generator {name!r} needs object masks, but no training image of {names} has one"
            )
    if request.failures.empty:
        size = request.pool.image_size
        return GeneratedImages(
            np.zeros((0, size, size, 3), np.uint8),
            np.zeros(0, np.int64),
            None,
            pd.DataFrame(columns=list(PROVENANCE_COLUMNS)),
        )
    out = spec.fn(request)
    _check_output(name, out, request)
    return out


def _check_output(name: str, out: GeneratedImages, request: GenerationRequest) -> None:
    images = np.asarray(out.images)
    n = len(images)
    size = request.pool.image_size
    if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
        raise ValueError(
            f"generator {name!r} must return uint8 [M, {size}, {size}, 3] images (the stored "
            f"size), got {images.dtype} {images.shape}"
        )
    labels = np.asarray(out.labels)
    if labels.shape != (n,) or (
        n and not 0 <= labels.min() <= labels.max() < len(request.class_names)
    ):
        raise ValueError(f"generator {name!r} returned labels that do not fit its {n} images")
    if out.masks is not None and len(out.masks) != n:
        raise ValueError(f"generator {name!r} returned {len(out.masks)} masks for {n} images")
    missing = sorted(set(PROVENANCE_COLUMNS) - set(out.provenance.columns))
    if len(out.provenance) != n or missing:
        raise ValueError(
            f"generator {name!r} must return one provenance row per image with columns "
            f"{list(PROVENANCE_COLUMNS)} (missing {missing}, {len(out.provenance)} rows)"
        )
    unknown = set(out.provenance["motivated_by"]) - set(request.failures["image_id"])
    if unknown:
        raise ValueError(f"generator {name!r} names unknown failures {sorted(unknown)[:3]}")
    pool_ids = set(request.pool.image_ids)
    for column in ("source_image_id", "background_image_id"):
        used = {i for i in out.provenance[column] if i is not None and not pd.isna(i)}
        if not used <= pool_ids:
            raise ValueError(
                f"generator {name!r} used pixels from outside the training pool in {column}: "
                f"{sorted(used - pool_ids)[:3]}"
            )


def details_json(details: Any) -> str:
    """Provenance details as canonical JSON (what the Parquet table stores)."""
    return json.dumps(details, sort_keys=True, default=str)
