"""What the synthetic source draws: shape families (class = shape) and the background texture bank.

Shapes map shape-local coordinates (u, v), unit circumradius, to a bool mask; textures are float
fields in [0, 1] between two colours, ordered from most to least blur-fragile.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: Texture sizes are given for 64-px images and scaled with the image size.
_REFERENCE_SIZE = 64.0


# --------------------------------------------------------------------------------------------
# Shape families: each maps shape-local coordinates (u, v), unit circumradius, to a bool mask.
# --------------------------------------------------------------------------------------------
def _regular_polygon(n: int, phase: float = math.pi / 2) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star_polygon(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = math.pi / 2 + math.pi * np.arange(2 * points) / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


_ARROW = np.array(
    [[-1.0, -0.25], [0.2, -0.25], [0.2, -0.65], [1.0, 0.0], [0.2, 0.65], [0.2, 0.25], [-1.0, 0.25]]
)


def _inside_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over the pixel grid (polygons have a handful of vertices)."""
    inside = np.zeros(u.shape, dtype=bool)
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
        if ay == by:
            continue
        crosses = (ay > v) != (by > v)
        x_at = ax + (v - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (u < x_at)
    return inside


ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

SHAPES: dict[str, ShapeFn] = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.75,
    "triangle": lambda u, v: _inside_polygon(u, v, _regular_polygon(3)),
    "star": lambda u, v: _inside_polygon(u, v, _star_polygon()),
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(u) <= 0.95) & (np.abs(v) <= 0.3))
    ),
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2),
    "hexagon": lambda u, v: _inside_polygon(u, v, _regular_polygon(6, phase=0.0)),
    "ellipse": lambda u, v: (u / 1.0) ** 2 + (v / 0.5) ** 2 <= 1.0,
    "crescent": lambda u, v: (u * u + v * v <= 1.0) & ((u - 0.5) ** 2 + v * v > 0.8**2),
    "arrow": lambda u, v: _inside_polygon(u, v, _ARROW),
}
SHAPE_NAMES: tuple[str, ...] = tuple(SHAPES)


# --------------------------------------------------------------------------------------------
# Texture bank: (family, parameters). Colours, phase and a small angle jitter are drawn per
# image. Ordered from most to least blur-fragile: the first ``num_textures`` are used, and
# class c is tied to texture c, so the default bank (8) holds no smooth gradient.
# --------------------------------------------------------------------------------------------
TEXTURES: tuple[tuple[str, dict[str, float]], ...] = (
    ("stripes", {"angle": 0.0, "period": 4.0}),
    ("checker", {"angle": 0.0, "cell": 3.0}),
    ("dots", {"period": 6.0, "radius": 1.6}),
    ("stripes", {"angle": 45.0, "period": 5.0}),
    ("noise", {"cell": 1.0}),
    ("stripes", {"angle": 90.0, "period": 4.0}),
    ("checker", {"angle": 45.0, "cell": 4.0}),
    ("stripes", {"angle": 135.0, "period": 6.0}),
    ("gradient", {"angle": 30.0, "ripple": 3.0}),
    ("noise", {"cell": 3.0}),
    ("dots", {"period": 4.0, "radius": 1.0}),
    ("gradient", {"angle": 120.0, "ripple": 5.0}),
)


def texture_field(
    family: str, params: dict[str, float], size: int, rng: np.random.Generator
) -> np.ndarray:
    """A float field in [0, 1] (HxW) for one texture; 0/1 = the two texture colours."""
    k = size / _REFERENCE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    jitter = math.radians(float(rng.uniform(-8.0, 8.0)))
    angle = math.radians(params.get("angle", 0.0)) + jitter
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    phase = float(rng.uniform(0.0, 1.0))
    if family == "stripes":
        return ((along / (params["period"] * k) + phase) % 1.0 < 0.5).astype(np.float64)
    if family == "checker":
        cell = params["cell"] * k
        a = np.floor(along / cell + phase).astype(np.int64)
        b = np.floor(across / cell + phase).astype(np.int64)
        return ((a + b) % 2).astype(np.float64)
    if family == "dots":
        period = params["period"] * k
        du = (xx / period + phase) % 1.0 - 0.5
        dv = (yy / period + phase) % 1.0 - 0.5
        return ((du * du + dv * dv) * period * period <= (params["radius"] * k) ** 2).astype(
            np.float64
        )
    if family == "noise":
        cell = max(1, round(params["cell"] * k))
        n = -(-size // cell)
        coarse = rng.random((n, n))
        return np.kron(coarse, np.ones((cell, cell)))[:size, :size]
    if family == "gradient":
        ramp = (along - along.min()) / max(float(np.ptp(along)), 1e-9)
        ripple = 0.5 + 0.5 * np.sin(2 * math.pi * (across / (params["ripple"] * k) + phase))
        return 0.7 * ramp + 0.3 * ripple
    raise ValueError(f"unknown texture family {family!r}")
