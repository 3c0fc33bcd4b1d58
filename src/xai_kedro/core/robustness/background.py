"""The `background` shift family: the object, by its mask, on a background it was not trained with.

The synthetic source ties class c to texture c in the ``train`` split only
(`core.data.synthetic.spurious_texture`), so a model can learn a background shortcut. These
shifts test the hypothesis about attention on the object directly:

- ``counter_biased``: the background shows the texture the training split ties to *another*
  class, the confuser (class ``label + 1`` mod the number of classes): the background points to
  a wrong answer;
- ``novel_texture``: a texture of the bank that no split ever uses (ids from ``num_textures`` on,
  the object unchanged): the background points nowhere.

The severity value is the fraction of the background (in a 6x6 grid of cells, chosen at random
per image) that shows the new texture: 0 is the identity, 1 the whole background. The new
texture is freshly drawn from the source's own renderer with colours of its own, from the
image's seed: no pixel of any other image is used, so nothing leaks across splits. Object pixels
(mask nonzero) are never changed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xai_kedro.core.data.shapes import TEXTURES
from xai_kedro.core.data.synthetic import SyntheticConfig, draw_spec, spurious_texture
from xai_kedro.core.robustness.shifts import ShiftContext, register_shift

BACKGROUND_FAMILY = "background"
GRID_CELLS = 6  # cells per side of the background grid the severity fills


def _check(value: float, context: ShiftContext, name: str) -> np.ndarray:
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{name}: severity value is the background fraction in [0, 1], got {value}"
        )
    if context.mask is None:
        raise ValueError(f"{name}: background shifts need the object mask; this image has none")
    return np.asarray(context.mask) != 0


def confuser(label: int, world: SyntheticConfig) -> int:
    """The class whose training texture ``counter_biased`` puts behind an image of ``label``."""
    return (int(label) + 1) % world.num_classes


def novel_texture_ids(world: SyntheticConfig | None) -> list[int]:
    """Bank textures no split of ``world`` uses (every bank texture for non-synthetic sources)."""
    start = 0 if world is None else world.num_textures
    return list(range(start, len(TEXTURES)))


def _texture(texture_id: int, size: int, rng: np.random.Generator, world: SyntheticConfig | None):
    """A fresh texture ``texture_id`` at ``size`` px from the source's renderer (own colours)."""
    base = world if world is not None else SyntheticConfig(num_classes=2)
    config = replace(base, image_size=size, num_textures=len(TEXTURES))
    return draw_spec(config, rng, 0, texture_id).texture


def _cells(shape: tuple[int, int], value: float, rng: np.random.Generator) -> np.ndarray:
    """HxW bool: round(value * 36) of the 6x6 grid cells, chosen at random."""
    n = GRID_CELLS * GRID_CELLS
    chosen = np.zeros(n, dtype=bool)
    chosen[rng.permutation(n)[: int(round(value * n))]] = True
    rows = np.minimum(np.arange(shape[0]) * GRID_CELLS // shape[0], GRID_CELLS - 1)
    cols = np.minimum(np.arange(shape[1]) * GRID_CELLS // shape[1], GRID_CELLS - 1)
    return chosen.reshape(GRID_CELLS, GRID_CELLS)[rows[:, None], cols[None, :]]


def _composite(
    image: np.ndarray,
    value: float,
    seed: int,
    context: ShiftContext,
    name: str,
    texture_id: int | None = None,
) -> np.ndarray:
    """Replace the chosen background cells by a new texture; object pixels stay as they are."""
    obj = _check(value, context, name)
    if value == 0.0:
        return image.copy()
    rng = np.random.default_rng(seed)
    if texture_id is None:
        novel = novel_texture_ids(context.world)
        if not novel:
            raise ValueError(f"{name}: the world uses every texture of the bank; none is novel")
        texture_id = novel[int(rng.integers(len(novel)))]
    texture = _texture(texture_id, image.shape[0], rng, context.world)[
        : image.shape[0], : image.shape[1]
    ]
    replace_px = _cells(image.shape[:2], value, rng) & ~obj
    return np.where(replace_px[..., None], texture, image).astype(np.uint8)


@register_shift(BACKGROUND_FAMILY, "counter_biased")
def counter_biased(image: np.ndarray, value: float, seed: int, context: ShiftContext) -> np.ndarray:
    """The confuser's training texture behind the object, on a ``value`` fraction of the
    background (synthetic source only: it needs the world's class-texture tie)."""
    if context.world is None:
        raise ValueError("counter_biased: needs the synthetic world (ood.background.world)")
    texture_id = spurious_texture(context.world, confuser(context.label, context.world))
    return _composite(image, value, seed, context, "counter_biased", texture_id)


@register_shift(BACKGROUND_FAMILY, "novel_texture")
def novel_texture(image: np.ndarray, value: float, seed: int, context: ShiftContext) -> np.ndarray:
    """A texture never seen in training behind the object, on a ``value`` fraction of the
    background (any source with object masks)."""
    return _composite(image, value, seed, context, "novel_texture")
