"""Generators of targeted training images: one registered function per generator.

A generator turns the diagnosed failures of one adapter into new *training* images that address
them. It receives a :class:`GenerationRequest` (the failing validation samples: ids, labels,
confusers, attention statistics, but not their pixels; the training split as an
:class:`ImagePool` whose pixels it fetches on demand; its own settings; a seed) and returns
:class:`GeneratedImages` with one provenance row per image. Pixels come only from the training
split or from a renderer, so the validation split stays a clean validation split and the test
split is never an input.

Built in:

* ``synthetic_counterfactual`` (synthetic source): renders fresh objects of each failing class,
  with the synthetic source's own renderer, on the textures the training split ties to *other*
  classes, first the confuser's: the background shortcut now points the wrong way.
* ``background_swap`` (any source with object masks, e.g. Oxford-IIIT Pet trimaps): the object
  pixels of a training image of the failing class, by its mask, composited onto the background
  of a training image of another class (first the confuser's) whose own object is filled in
  from the surrounding background; the mask's border is feathered into the new background.

Your own generator (e.g. a local diffusion inpainting model) is one function::

    from xai_kedro.core.injection.generators import (
        GeneratedImages, GenerationRequest, register_generator)

    @register_generator("inpaint_background", requires_masks=True)
    def inpaint_background(request: GenerationRequest) -> GeneratedImages:
        ...  # request.failures, request.pool.fetch(ids), request.params, request.seed
        return GeneratedImages(images, labels, masks, provenance)

and its module listed under `knowledge_injection.generator.plugins`; choose it with
`knowledge_injection.generator.name: inpaint_background`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from xai_kedro.core.data.synthetic import (
    SyntheticConfig,
    draw_spec,
    render,
    spurious_texture,
    texture_name,
)
from xai_kedro.core.injection.diagnosis import stable_int

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


GENERATORS: dict[str, GeneratorSpec] = {}


def register_generator(
    name: str, *, requires_masks: bool = False, description: str = ""
) -> Callable[[Generator], Generator]:
    """Decorator adding a generator to the registry under `name` (a duplicate is an error)."""

    def add(fn: Generator) -> Generator:
        if name in GENERATORS:
            raise ValueError(f"a generator named {name!r} is already registered")
        GENERATORS[name] = GeneratorSpec(name, fn, requires_masks, description or fn.__doc__ or "")
        return fn

    return add


def get_generator(name: str) -> GeneratorSpec:
    """The registered generator `name`; an unknown name is an error that lists the known ones."""
    if name not in GENERATORS:
        raise ValueError(
            f"unknown generator {name!r} in knowledge_injection.generator.name; known: "
            f"{sorted(GENERATORS)} (register your own with @register_generator and list its "
            "module under knowledge_injection.generator.plugins)"
        )
    return GENERATORS[name]


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


def background_classes(label: int, confuser: int, num_classes: int) -> list[int]:
    """Classes whose backgrounds a failing sample's new images get, in order: the confuser
    first, then every other class but its own."""
    others = [k for k in range(num_classes) if k not in (label, confuser)]
    return ([confuser] if confuser != label else []) + others


def _failure_rng(seed: int, image_id: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_int(image_id), *extra]))


def _settings(cls: type, params: Mapping[str, Any] | None, generator: str) -> Any:
    params = dict(params or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"unknown knowledge_injection.generator.params {unknown} for {generator!r}; "
            f"expected some of {sorted(known)}"
        )
    return cls(**params)


# ------------------------------------------------------------------------------ synthetic
def _resized(rgb: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The stored view of a rendered image (ingestion resizes with Lanczos, masks nearest)."""
    if rgb.shape[0] == size:
        return rgb, mask
    image = Image.fromarray(rgb).resize((size, size), Image.Resampling.LANCZOS)
    small = Image.fromarray(mask * np.uint8(255)).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(image), (np.asarray(small) > 0).astype(np.uint8)


def render_counterfactual(
    config: SyntheticConfig, label: int, texture_id: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A fresh object of class `label` on texture `texture_id`, by the synthetic renderer."""
    return render(draw_spec(config, rng, label, texture_id), config)


@register_generator(
    "synthetic_counterfactual",
    description="failing classes' objects on the training textures of other classes",
)
def synthetic_counterfactual(request: GenerationRequest) -> GeneratedImages:
    """Per failing sample: `per_failure` fresh objects of its class, on the textures the
    training split ties to its confuser first, then to the other classes."""
    kind = request.source.get("kind")
    if kind != "synthetic" or "synthetic" not in request.source:
        raise ValueError(
            "generator 'synthetic_counterfactual' renders with the synthetic source's generator:"
            f" it needs ingestion.source.kind: synthetic (got {kind!r}); for a source with "
            "object masks use 'background_swap'"
        )
    config = SyntheticConfig.from_dict(dict(request.source["synthetic"]))
    if len(request.class_names) != config.num_classes:
        raise ValueError(
            f"the synthetic config has {config.num_classes} classes, Bronze {len(request.class_names)}"
        )
    images, labels, masks, provenance = [], [], [], []
    for row in request.failures.sort_values("image_id").itertuples(index=False):
        label = int(row.label)
        order = background_classes(label, int(row.confuser), config.num_classes)
        for j in range(request.per_failure):
            texture_class = order[j % len(order)]
            texture_id = spurious_texture(config, texture_class)
            rgb, mask = render_counterfactual(
                config, label, texture_id, _failure_rng(request.seed, row.image_id, j)
            )
            rgb, mask = _resized(rgb, mask, request.pool.image_size)
            images.append(rgb)
            labels.append(label)
            masks.append(mask)
            provenance.append(
                {
                    "motivated_by": row.image_id,
                    "source_image_id": None,
                    "background_image_id": None,
                    "details": {
                        "texture_id": texture_id,
                        "texture": texture_name(texture_id),
                        "texture_of_class": request.class_names[texture_class],
                        "render": j,
                    },
                }
            )
    return GeneratedImages(
        np.stack(images), np.asarray(labels, np.int64), masks, pd.DataFrame(provenance)
    )


# ------------------------------------------------------------------------------ background swap
@dataclass(frozen=True)
class BackgroundSwapSettings:
    """blend_px: width in pixels of the feathered ring outside the object mask (0 = hard cut)."""

    blend_px: int = 2

    def __post_init__(self) -> None:
        if int(self.blend_px) < 0:
            raise ValueError(
                f"knowledge_injection.generator.params.blend_px must be >= 0, got {self.blend_px}"
            )


def fill_object(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The image with its object's pixels replaced by the nearest background pixel, so that a
    background taken from another class's image carries no object of that class."""
    if mask is None or not np.asarray(mask).any():
        return np.asarray(image).copy()
    inside = np.asarray(mask).astype(bool)
    if inside.all():
        raise ValueError("an image whose mask covers every pixel has no background to take")
    _, (rows, cols) = ndimage.distance_transform_edt(inside, return_indices=True)
    return np.asarray(image)[rows, cols]


def composite_on_background(
    image: np.ndarray, mask: np.ndarray, background: np.ndarray, blend_px: int
) -> np.ndarray:
    """`image`'s object (mask != 0) on `background`: every object pixel is kept exactly; the
    `blend_px` pixels outside the mask fade from `image` into `background` (distance feather)."""
    image, background = np.asarray(image), np.asarray(background)
    if image.shape != background.shape:
        raise ValueError(f"object image {image.shape} and background {background.shape} differ")
    inside = np.asarray(mask).astype(bool)
    if inside.shape != image.shape[:2]:
        raise ValueError(f"mask {inside.shape} does not fit the image {image.shape[:2]}")
    alpha = np.zeros(inside.shape, dtype=np.float64)
    if blend_px > 0 and inside.any():
        distance = ndimage.distance_transform_edt(~inside)
        alpha = np.clip(1.0 - distance / (blend_px + 1), 0.0, 1.0)
    mixed = alpha[..., None] * image + (1.0 - alpha[..., None]) * background
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    out[inside] = image[inside]
    return out


@register_generator(
    "background_swap",
    requires_masks=True,
    description="object pixels by mask onto backgrounds of other-class training images",
)
def background_swap(request: GenerationRequest) -> GeneratedImages:
    """Per failing sample: `per_failure` training objects of its class (by mask) on training
    backgrounds of its confuser first, then of the other classes (their objects filled in)."""
    settings = _settings(BackgroundSwapSettings, request.params, "background_swap")
    pool = request.pool
    num_classes = len(request.class_names)
    donors = {k: pool.ids_of_class(k, with_mask=True) for k in range(num_classes)}
    plan = []
    for row in request.failures.sort_values("image_id").itertuples(index=False):
        label = int(row.label)
        rng = _failure_rng(request.seed, row.image_id)
        order = [k for k in background_classes(label, int(row.confuser), num_classes) if donors[k]]
        if not order:
            raise ValueError("background_swap needs training images with masks of another class")
        for j in range(request.per_failure):
            source = donors[label][int(rng.integers(len(donors[label])))]
            back_class = order[j % len(order)]
            back = donors[back_class][int(rng.integers(len(donors[back_class])))]
            plan.append((row.image_id, label, source, back, back_class))
    wanted = sorted({p[2] for p in plan} | {p[3] for p in plan})
    pixels, masks = pool.fetch(wanted)
    by_id = {i: (pixels[n], masks[n] if masks is not None else None) for n, i in enumerate(wanted)}
    images, labels, out_masks, provenance = [], [], [], []
    for motivated_by, label, source, back, back_class in plan:
        object_image, object_mask = by_id[source]
        if object_mask is None or not np.asarray(object_mask).any():
            raise ValueError(f"background_swap: training image {source} has an empty mask")
        background = fill_object(*by_id[back])
        images.append(
            composite_on_background(object_image, object_mask, background, settings.blend_px)
        )
        labels.append(label)
        out_masks.append(np.asarray(object_mask).astype(np.uint8))
        provenance.append(
            {
                "motivated_by": motivated_by,
                "source_image_id": source,
                "background_image_id": back,
                "details": {
                    "background_of_class": request.class_names[back_class],
                    "blend_px": settings.blend_px,
                },
            }
        )
    return GeneratedImages(
        np.stack(images), np.asarray(labels, np.int64), out_masks, pd.DataFrame(provenance)
    )


def details_json(details: Any) -> str:
    """Provenance details as canonical JSON (what the Parquet table stores)."""
    return json.dumps(details, sort_keys=True, default=str)
