"""Failure gallery: misclassified images with their attention overlay (seed 002's raw material)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


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
    alpha: float = 0.5,
) -> Figure:
    """Grid of images with the attention heatmap blended on top and a caption under each."""
    count = max(1, len(images))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(3 * columns, 3.2 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    if not images:
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for ax, image, heatmap, caption in zip(axes, images, heatmaps, captions, strict=False):
        ax.imshow(image)
        ax.imshow(heatmap_overlay(image, heatmap), cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax.set_title(caption, fontsize=8)
    figure.suptitle(title)
    return figure
