"""Heatmap and curve metrics, batched over rows, each declared once in `XAI_METRICS`.

Formulas follow the reference experiment (Lacavalla, Knowledge Injection via XAI); any explainer's
heatmap works.

Inputs are torch tensors or numpy arrays [B, N]; outputs are float64 tensors [B] on the input's
device. Heatmaps are renormalised to sum 1 per row first, so raw attention also works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from xai_kedro.core.common.registry import Registry


def _rows(h: torch.Tensor | np.ndarray, name: str = "heatmap") -> torch.Tensor:
    t = torch.as_tensor(h).to(torch.float64)
    if t.ndim != 2 or t.shape[1] == 0:
        raise ValueError(f"{name} must be [B, N] with N >= 1, got shape {tuple(t.shape)}")
    if bool((t < 0).any()):
        raise ValueError(f"{name} has negative entries; a heatmap is a distribution")
    return t


def _normalised(t: torch.Tensor) -> torch.Tensor:
    total = t.sum(dim=1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError("heatmap row sums to zero; cannot normalise")
    return t / total


def attention_entropy(h: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Normalised Shannon entropy -sum p log2 p / log2 N, 0 log 0 = 0: 0 focused ... 1 uniform.

    N = 1 has no spread to measure; it returns 0.
    """
    p = _normalised(_rows(h))
    n = p.shape[1]
    if n == 1:
        return torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
    return torch.special.entr(p).sum(dim=1) / np.log(n)  # entr is in nats; the ratio is base-free


def gini(h: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The reference experiment's Gini: S = 1 - (2/N) sum_{i=1..N} (N - i + 0.5) p_(i), p ascending, sum 1.

    Uniform -> 0, one-hot -> 1 - 1/N.
    """
    p = torch.sort(_normalised(_rows(h)), dim=1).values
    n = p.shape[1]
    i = torch.arange(1, n + 1, dtype=p.dtype, device=p.device)
    return 1.0 - (2.0 / n) * ((n - i + 0.5) * p).sum(dim=1)


def curve_area(
    curve: torch.Tensor | np.ndarray, x: torch.Tensor | np.ndarray | None = None
) -> torch.Tensor:
    """Trapezoid area of [B, K+1] curves over x (default: 0, 1/K, ..., 1), float64 [B].

    The curves' x is the true fraction n_k / N of patches removed or revealed, which differs from
    k / K whenever K does not divide N. A curve in [0, 1] over x from 0 to 1 has an area in [0, 1].
    """
    y = torch.as_tensor(curve).to(torch.float64)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"curve must be [B, K+1] with K >= 1, got shape {tuple(y.shape)}")
    if x is None:
        x = torch.linspace(0.0, 1.0, y.shape[1], dtype=torch.float64)
    x = torch.as_tensor(x).to(dtype=torch.float64, device=y.device)
    if x.shape != (y.shape[1],) or bool((x[1:] < x[:-1]).any()):
        raise ValueError(f"x must be {y.shape[1]} non-decreasing points, got {x.tolist()}")
    return (0.5 * (y[:, 1:] + y[:, :-1]) * (x[1:] - x[:-1])).sum(dim=1)


def bounded_ratio(curve: torch.Tensor) -> torch.Tensor:
    """The reference experiment's f(perturbed) / f(original), clipped at 1 so it stays in [0, 1]
    (a removal that raises the target probability counts as no drop; unclipped, the ratio of a
    clean mistake with p_clean = 1e-6 reaches thousands). Column 0 is the clean image."""
    y = torch.as_tensor(curve).to(torch.float64)
    return torch.minimum(y / y[:, :1].clamp_min(torch.finfo(torch.float64).tiny), torch.ones(()))


def patch_object_fraction(
    masks: torch.Tensor | np.ndarray, grid: int | tuple[int, int]
) -> torch.Tensor:
    """[B, H, W] 0/1 masks -> [B, gh * gw] fraction of object pixels under each patch.

    The image is resized to the model input and split into a regular grid, so patch i covers the
    same relative region of the original; averaging the mask over that region (adaptive average
    pooling) gives its object fraction without resampling artefacts.
    """
    m = torch.as_tensor(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be [B, H, W], got shape {tuple(m.shape)}")
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    frac = F.adaptive_avg_pool2d((m > 0).to(torch.float64)[:, None], (gh, gw))
    return frac.reshape(m.shape[0], gh * gw)


def object_attention_share(
    h: torch.Tensor | np.ndarray, masks: torch.Tensor | np.ndarray, grid: int | tuple[int, int]
) -> torch.Tensor:
    """Share of the heatmap on the object: sum_i p_i * (object fraction of patch i), in [0, 1]."""
    p = _normalised(_rows(h))
    frac = patch_object_fraction(masks, grid).to(p.device)
    if frac.shape != p.shape:
        raise ValueError(
            f"heatmap {tuple(p.shape)} does not match the mask grid {tuple(frac.shape)}"
        )
    return (p * frac).sum(dim=1)


# ------------------------------------------------------------------------------ declarations
@dataclass(frozen=True)
class MetricInputs:
    """What one chunk of the XAI stage offers a metric (all on the CPU)."""

    heatmap: torch.Tensor  # [B, N] float32, rows sum to 1
    deletion: torch.Tensor  # [B, K+1] float64 target probabilities
    insertion: torch.Tensor  # [B, K+1] float64 target probabilities
    fractions: torch.Tensor  # [K+1] float64: n_k / N, the curves' x
    masks: Sequence[np.ndarray | None] | None  # per-image object masks, or None
    grid: int  # patches per side


@dataclass(frozen=True)
class XAIMetric:
    """One `silver_xai` column computed from an explanation.

    feature: a candidate meta-learning feature. label_free: computable without ground truth
    (labels or object masks). follows_target: computed from the probability of the curves'
    target class, so label-free only when that target is the clean prediction.
    """

    name: str
    compute: Callable[[MetricInputs], np.ndarray]
    description: str
    feature: bool = True
    label_free: bool = True
    follows_target: bool = False
    nullable: bool = False


XAI_METRICS: Registry[XAIMetric] = Registry("XAI metric", setting="silver_xai columns")


def register_metric(name: str, description: str, **flags: bool) -> Callable:
    """Declare a `silver_xai` metric column; registration order is column order."""

    def decorate(fn: Callable[[MetricInputs], np.ndarray]) -> Callable[[MetricInputs], np.ndarray]:
        XAI_METRICS.register(name, XAIMetric(name, fn, description, **flags))
        return fn

    return decorate


@register_metric("attn_entropy", "normalised Shannon entropy of the heatmap (0 focused, 1 uniform)")
def _attn_entropy(inputs: MetricInputs) -> np.ndarray:
    return attention_entropy(inputs.heatmap).numpy()


@register_metric("gini", "Gini sparsity of the heatmap (0 uniform, 1 - 1/N one patch)")
def _gini(inputs: MetricInputs) -> np.ndarray:
    return gini(inputs.heatmap).numpy()


@register_metric(
    "deletion_auc",
    "area of the target probability as the most important patches are removed (lower = faithful)",
    follows_target=True,
)
def _deletion_auc(inputs: MetricInputs) -> np.ndarray:
    return curve_area(inputs.deletion, inputs.fractions).numpy()


@register_metric(
    "insertion_auc",
    "area of the target probability as the most important patches are revealed (higher = faithful)",
    follows_target=True,
)
def _insertion_auc(inputs: MetricInputs) -> np.ndarray:
    return curve_area(inputs.insertion, inputs.fractions).numpy()


@register_metric(
    "deletion_ratio_auc",
    "the reference experiment's deletion score: area of p_k / p_clean clipped at 1",
    feature=False,
    follows_target=True,
)
def _deletion_ratio_auc(inputs: MetricInputs) -> np.ndarray:
    return curve_area(bounded_ratio(inputs.deletion), inputs.fractions).numpy()


@register_metric(
    "object_attention_share",
    "share of the heatmap on the object mask (needs ground-truth masks)",
    label_free=False,
    nullable=True,
)
def _object_share(inputs: MetricInputs) -> np.ndarray:
    out = np.full(inputs.heatmap.shape[0], np.nan)
    if inputs.masks is None:
        return out
    present = [i for i, m in enumerate(inputs.masks) if m is not None]
    if present:
        stacked = torch.stack([torch.as_tensor(np.array(inputs.masks[i])) for i in present])
        out[present] = object_attention_share(inputs.heatmap[present], stacked, inputs.grid).numpy()
    return out
