"""Failure gallery: misclassified images with their attention overlay (the raw material of Vemula's "Does Explainability Help in Improving ViTs?")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

# the overlay: a perceptual colormap whose opacity follows the heat, so the image stays visible
# where the explainer puts little weight (a uniform jet overlay hid it)
OVERLAY_CMAP = "inferno"


def heatmap_overlay(image: np.ndarray, heatmap: Sequence[float]) -> np.ndarray:
    """Upsample a patch-grid heatmap to the image size (nearest) as a [0, 1] map."""
    values = np.asarray(heatmap, dtype=np.float64)
    grid = int(round(math.sqrt(values.size)))
    if grid * grid != values.size:
        raise ValueError(f"heatmap of {values.size} values is not a square patch grid")
    span = values.max() - values.min()
    values = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    tile = values.reshape(grid, grid)
    reps = (math.ceil(image.shape[0] / grid), math.ceil(image.shape[1] / grid))
    return np.kron(tile, np.ones(reps))[: image.shape[0], : image.shape[1]]


def failure_figure(
    title: str,
    images: Sequence[np.ndarray],
    heatmaps: Sequence[Sequence[float]],
    captions: Sequence[str],
    columns: int = 4,
    alpha: float = 0.6,
    explainer: str = "attention",
) -> Figure:
    """Grid of images with the explainer's heatmap blended on top, a caption under each and one
    colourbar (each heatmap is min-max scaled to [0, 1] for display). ``alpha`` is the opacity
    of the hottest patch; a patch's opacity is ``alpha`` times its heat, so cold patches leave
    the image as it is."""
    count = max(1, len(images))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(3 * columns, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    if not images:
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    drawn = False
    for ax, image, heatmap, caption in zip(axes, images, heatmaps, captions, strict=False):
        ax.imshow(image)
        heat = heatmap_overlay(image, heatmap)
        ax.imshow(heat, cmap=OVERLAY_CMAP, alpha=alpha * heat, vmin=0, vmax=1)
        ax.set_title(caption, fontsize=8)
        drawn = True
    if drawn:
        key = ScalarMappable(Normalize(0, 1), OVERLAY_CMAP)
        figure.colorbar(
            key,
            ax=list(axes),
            shrink=0.6,
            label=f"{explainer} heatmap (scaled per image; opacity follows the value)",
        )
    figure.suptitle(f"{title} ({explainer} heatmaps)")
    return figure
