"""Fidelity+ and Fidelity- against sparsity, and their areas, for a chunk of images.

After Wang et al. (2024, "TVE: Learning Meta-attribution for Transferable Vision Explainer"),
who report Fidelity+/- against sparsity curves and their areas. At sparsity s the top
n_s = round(s N) patches of the heatmap (importance order, ties by lower index) are

* removed:     Fidelity+(s) = p(x) - p(x without them)   (higher = more faithful),
* kept alone:  Fidelity-(s) = p(x) - p(only them)        (lower = more faithful),

with p the target class probability. Differences of probabilities are bounded in [-1, 1]. The
curves run on the deletion curves' machinery (`curves`): the same perturbation (token drop or
pixel baseline), the same scorer, every distinct kept count one batched forward. The area is the
trapezoid over the true fractions n_s / N divided by their range, so it is a mean level in
[-1, 1]. A level that leaves no patch scores the same empty input as the deletion curves
(`XAIConfig.empty_input`: each image's blurred copy by default); the default sparsities leave
out s = 0 and s = 1 altogether.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from xai_kedro.core.xai.curves import ExplainedChunk, _ChunkScorer, score_steps

DEFAULT_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class FidelityCurves:
    """Fidelity+/- of a chunk at the sparsity levels (true fractions n_s / N)."""

    sparsity: torch.Tensor  # [S] float64
    plus: torch.Tensor  # [B, S] float64
    minus: torch.Tensor  # [B, S] float64


def check_sparsities(sparsities: Sequence[float]) -> tuple[float, ...]:
    """Strictly increasing levels in [0, 1], at least two (an area needs a range)."""
    levels = tuple(float(s) for s in sparsities)
    if len(levels) < 2:
        raise ValueError(f"fidelity sparsities need at least two levels, got {list(levels)}")
    if any(not 0.0 <= s <= 1.0 for s in levels):
        raise ValueError(f"fidelity sparsities must lie in [0, 1], got {list(levels)}")
    if any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
        raise ValueError(f"fidelity sparsities must increase strictly, got {list(levels)}")
    return levels


def sparsity_counts(n_patches: int, sparsities: Sequence[float]) -> list[int]:
    """n_s = round(s N), halves rounding up (as the deletion steps)."""
    return [int(s * n_patches + 0.5) for s in check_sparsities(sparsities)]


def fidelity_curves(
    scorer: _ChunkScorer,
    chunk: ExplainedChunk,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
) -> FidelityCurves:
    """Fidelity+/- curves of one chunk (as `curves._curves`; lp_clean: log p(x))."""
    n = chunk.heatmap.shape[1]
    counts = sparsity_counts(n, sparsities)
    removed_lp, kept_lp = score_steps(scorer, chunk, counts)
    p_clean = torch.exp(chunk.lp_clean.double())[:, None]
    plus = p_clean - torch.exp(removed_lp)
    minus = p_clean - torch.exp(kept_lp)
    fractions = torch.tensor(counts, dtype=torch.float64, device=plus.device) / n
    return FidelityCurves(fractions, plus, minus)


def mean_level(curve: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Trapezoid area of [B, S] over x [S] divided by the x range: a mean level per row."""
    width = float(x[-1] - x[0])
    if width <= 0:
        raise ValueError(
            f"the sparsity levels give one patch count only ({x.tolist()}); use a wider range"
        )
    return torch.trapezoid(curve, x, dim=1) / width


def fidelity_areas(curves: FidelityCurves) -> tuple[torch.Tensor, torch.Tensor]:
    """(Fidelity+ area, Fidelity- area), each [B] float64."""
    return mean_level(curves.plus, curves.sparsity), mean_level(curves.minus, curves.sparsity)
