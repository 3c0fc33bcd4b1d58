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

    from xai_kedro.core.injection.generator_api import (
        GeneratedImages, GenerationRequest, register_generator)

    @register_generator("inpaint_background", requires_masks=True)
    def inpaint_background(request: GenerationRequest) -> GeneratedImages:
        ...  # request.failures, request.pool.fetch(ids), request.params, request.seed
        return GeneratedImages(images, labels, masks, provenance)

and its module listed under `knowledge_injection.generator.plugins`; choose it with
`knowledge_injection.generator.name: inpaint_background`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.data.synthetic import (
    SyntheticConfig,
    draw_spec,
    render,
    spurious_texture,
    texture_name,
)
from xai_kedro.core.injection.diagnosis import stable_int
from xai_kedro.core.injection.generator_api import (
    GeneratedImages,
    GenerationRequest,
    register_generator,
)

logger = logging.getLogger(__name__)


def background_classes(label: int, confuser: int, num_classes: int) -> list[int]:
    """Classes whose backgrounds a failing sample's new images get, in order: the confuser
    first, then every other class but its own."""
    others = [k for k in range(num_classes) if k not in (label, confuser)]
    return ([confuser] if confuser != label else []) + others


def _failure_rng(seed: int, image_id: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_int(image_id), *extra]))


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
    config = SyntheticConfig.from_params(dict(request.source["synthetic"]))
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
class BackgroundSwapSettings(Settings):
    """blend_px: width in pixels of the feathered ring outside the object mask (0 = hard cut)."""

    PATH = "knowledge_injection.generator.params"

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
    settings = BackgroundSwapSettings.from_params(request.params)
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
