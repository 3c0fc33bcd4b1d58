"""The XAI profile of a batch of images under one model: the rows of `silver_xai`, fast.

Per image chunk: one clean forward gives logits and the heatmap (same pass); then the deletion
and insertion curves (K+1 points each) are scored with as few, as large forwards as possible:

* `token_drop` (default): the chunk is embedded ONCE; a perturbation step keeps CLS + registers +
  a subset of patch tokens gathered from that embedding (position embeddings stay correct). All
  images share the step's token count, and deletion step k (N - n_k tokens) pairs with the
  insertion step that keeps the same count, so every distinct count is one batched forward
  (split by a token budget). Steps with zero patch tokens are defined (the head pools a zero
  mean) and the deletion step without patches is the insertion step without patches.
* `pixel`: removed patches are replaced by a baseline (mean colour = 0 after normalisation, or a
  Gaussian-blurred copy) and the full sequence runs, as in RISE.

Deletion k=0 and insertion k=K are the clean image: they reuse the clean pass, so an image costs
1 + (2K - 1) forwards. Curves use log-probabilities, so the deletion ratio
f_k = p_k / p_clean = exp(log p_k - log p_clean) never divides by an underflowed zero.
`reference_deletion_insertion` is the one-image, one-step-at-a-time reference of the same
formulas; tests compare the two.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from xai_kedro.core.attention import get_explainer, patch_heatmap
from xai_kedro.core.classifier import ViTClassifier
from xai_kedro.core.device import autocast_for
from xai_kedro.core.inference import (
    as_uint8_images,
    images_x255,
    iter_batches,
    prediction_stats,
    resolve_input_size,
)
from xai_kedro.core.preprocessing import normalise, to_model_input
from xai_kedro.core.xai_metrics import (
    attention_entropy,
    gini,
    normalised_auc,
    object_attention_share,
)

logger = logging.getLogger(__name__)

PERTURBATIONS = ("token_drop", "pixel")
PIXEL_BASELINES = ("mean", "blur")
TARGETS = ("label", "predicted")

XAI_COLUMNS = [
    "label",
    "target_class",
    "pred",
    "confidence",
    "margin",
    "pred_entropy",
    "is_correct",
    "attn_entropy",
    "gini",
    "deletion_auc",
    "insertion_auc",
    "object_attention_share",
    "heatmap",
]


@dataclass(frozen=True)
class XAIConfig:
    """Settings of the XAI stage (parameters `xai` in conf/).

    steps: K, the curves have K+1 points (0 %, 1/K, ..., 100 % of the patches).
    perturbation: "token_drop" (removed patches leave the sequence) or "pixel" (RISE-style).
    pixel_baseline: "mean" (dataset mean colour, 0 after normalisation) or "blur".
    blur_sigma: Gaussian sigma in pixels at model input resolution (blur baseline).
    blur_truncate: the blur kernel radius is ceil(blur_truncate * blur_sigma).
    target: "label" (true class) or "predicted" (clean prediction, as in RISE).
    explainer: a key of `attention.EXPLAINERS` ("attention" or "rollout").
    batch_size: images per chunk (all their perturbation steps are batched together).
    max_batch_tokens: token budget of one perturbation forward (rows x sequence length).
    keep_heatmap: also return each heatmap (float32 array per row).
    input_size: model input resolution; None = the backbone's configured image size.
    """

    steps: int = 16
    perturbation: str = "token_drop"
    pixel_baseline: str = "mean"
    blur_sigma: float = 5.0
    blur_truncate: float = 3.0
    target: str = "label"
    explainer: str = "attention"
    batch_size: int = 64
    max_batch_tokens: int = 262_144
    keep_heatmap: bool = False
    input_size: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation {self.perturbation!r} not in {PERTURBATIONS}")
        if self.pixel_baseline not in PIXEL_BASELINES:
            raise ValueError(f"pixel_baseline {self.pixel_baseline!r} not in {PIXEL_BASELINES}")
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r} not in {TARGETS}")
        get_explainer(self.explainer)
        if self.blur_sigma <= 0 or self.blur_truncate <= 0:
            raise ValueError("blur_sigma and blur_truncate must be > 0")
        if self.batch_size < 1 or self.max_batch_tokens < 1:
            raise ValueError("batch_size and max_batch_tokens must be >= 1")

    @classmethod
    def from_dict(cls, params: Mapping | None) -> XAIConfig:
        """Build from a parameters mapping; unknown keys are an error (typos must not pass)."""
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"Unknown XAI settings {unknown}; expected some of {sorted(known)}")
        return cls(**params)


def step_counts(n_patches: int, steps: int) -> list[int]:
    """n_k = round(k N / K) patches removed/revealed at step k = 0..K (halves round up)."""
    return [(2 * k * n_patches + steps) // (2 * steps) for k in range(steps + 1)]


def importance_order(heatmap: torch.Tensor) -> torch.Tensor:
    """Patch indices [B, N] most important first; ties keep the lower index first (stable)."""
    return torch.argsort(-heatmap, dim=1, stable=True)


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with reflect padding (the `blur` pixel baseline)."""
    radius = min(math.ceil(truncate * sigma), x.shape[-1] - 1, x.shape[-2] - 1)
    if radius < 1:
        return x.clone()
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def pixel_baseline(pixel_values: torch.Tensor, config: XAIConfig) -> torch.Tensor:
    """What a removed patch shows: mean colour (0 after normalisation) or the blurred image."""
    if config.pixel_baseline == "mean":
        return torch.zeros_like(pixel_values)
    return gaussian_blur(pixel_values, config.blur_sigma, config.blur_truncate)


def patch_pixel_mask(keep: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """[R, N] bool (patch kept) -> [R, 1, grid*patch, grid*patch] float 0/1 pixel mask."""
    m = keep.view(-1, grid, grid).to(torch.float32)
    m = m.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)
    return m[:, None]


def _target_logprob(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).gather(1, target[:, None])[:, 0]


# A perturbation job: ("del", n) removes the n most important patches, ("ins", n) keeps only them.
_CLEAN = ("clean", 0)


def _job_key(curve: str, n: int, n_patches: int) -> tuple[str, int]:
    kept = n_patches - n if curve == "del" else n
    if kept == n_patches:
        return _CLEAN
    if kept == 0:
        return ("del", n_patches)  # no patch left: identical input for both curves
    return (curve, n)


def _kept_indices(key: tuple[str, int], order: torch.Tensor) -> torch.Tensor:
    """[B, c] indices (ascending) of the patches present in job `key`; order = importance order."""
    curve, n = key
    kept = order[:, n:] if curve == "del" else order[:, :n]
    return torch.sort(kept, dim=1).values


def _keep_mask(key: tuple[str, int], rank: torch.Tensor) -> torch.Tensor:
    """[B, N] bool: patches present in job `key`; rank[b, i] = importance position of patch i."""
    curve, n = key
    return rank >= n if curve == "del" else rank < n


class _ChunkScorer:
    """Target log-probabilities of every perturbation job for one chunk of images."""

    def __init__(self, model: ViTClassifier, config: XAIConfig, device: torch.device) -> None:
        self.model = model
        self.config = config
        self.device = device

    def token_drop(
        self, tokens: torch.Tensor, kept: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """kept [J*B, c] patch indices (same count c per row); row j*B + b refers to image b."""
        p = self.model.n_prefix
        b = tokens.shape[0]
        rows, count = kept.shape
        img = torch.arange(b, device=kept.device).repeat(rows // b)
        out = torch.empty(rows, device=tokens.device, dtype=torch.float32)
        per_forward = max(1, self.config.max_batch_tokens // (p + count))
        for sl in iter_batches(rows, per_forward):
            i = img[sl]
            seq = torch.cat([tokens[i, :p], tokens[i[:, None], p + kept[sl]]], dim=1)
            with autocast_for(self.device):
                logits = self.model.forward_tokens(seq)
            out[sl] = _target_logprob(logits, target[i])
        return out

    def pixel(
        self,
        pixel_values: torch.Tensor,
        baseline: torch.Tensor,
        keep: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        """keep [J*B, N] bool; removed patches show `baseline`, the full sequence runs."""
        b, _, size, _ = pixel_values.shape
        rows, n = keep.shape
        patch = self.model.patch_size
        grid = size // patch
        img = torch.arange(b, device=keep.device).repeat(rows // b)
        out = torch.empty(rows, device=pixel_values.device, dtype=torch.float32)
        per_forward = max(1, self.config.max_batch_tokens // (self.model.n_prefix + n))
        for sl in iter_batches(rows, per_forward):
            i = img[sl]
            m = patch_pixel_mask(keep[sl], grid, patch)
            x = pixel_values[i] * m + baseline[i] * (1.0 - m)
            with autocast_for(self.device):
                logits = self.model(x)
            out[sl] = _target_logprob(logits, target[i])
        return out


def _curves(
    scorer: _ChunkScorer,
    pixel_values: torch.Tensor,
    tokens: torch.Tensor,
    heatmap: torch.Tensor,
    target: torch.Tensor,
    lp_clean: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deletion and insertion curves [B, K+1] (float64) of one chunk."""
    config = scorer.config
    b, n = heatmap.shape
    counts = step_counts(n, config.steps)
    del_keys = [_job_key("del", c, n) for c in counts]
    ins_keys = [_job_key("ins", c, n) for c in counts]
    jobs = [k for k in dict.fromkeys(del_keys + ins_keys) if k != _CLEAN]
    order = importance_order(heatmap)
    logp: dict[tuple[str, int], torch.Tensor] = {_CLEAN: lp_clean}
    if config.perturbation == "token_drop":
        by_count: dict[int, list[tuple[str, int]]] = {}
        for key in jobs:
            kept = n - key[1] if key[0] == "del" else key[1]
            by_count.setdefault(kept, []).append(key)
        for group in by_count.values():
            kept = torch.cat([_kept_indices(key, order) for key in group])
            scores = scorer.token_drop(tokens, kept, target).view(len(group), b)
            logp.update(zip(group, scores, strict=True))
    elif jobs:
        baseline = pixel_baseline(pixel_values, config)
        rank = torch.argsort(order, dim=1)
        keep = torch.cat([_keep_mask(key, rank) for key in jobs])
        scores = scorer.pixel(pixel_values, baseline, keep, target).view(len(jobs), b)
        logp.update(zip(jobs, scores, strict=True))
    del_lp = torch.stack([logp[k] for k in del_keys], dim=1).double()
    ins_lp = torch.stack([logp[k] for k in ins_keys], dim=1).double()
    return torch.exp(del_lp - lp_clean.double()[:, None]), torch.exp(ins_lp)


def _mask_rows(masks: np.ndarray | torch.Tensor | Sequence | None, n: int) -> list | None:
    """Per-image masks (array or None) or None when no image has one."""
    if masks is None:
        return None
    rows = list(masks)
    if len(rows) != n:
        raise ValueError(f"{len(rows)} masks for {n} images")
    return rows if any(m is not None for m in rows) else None


def _object_share(heatmap: torch.Tensor, masks: list | None, grid: int) -> np.ndarray:
    out = np.full(heatmap.shape[0], np.nan)
    if masks is None:
        return out
    present = [i for i, m in enumerate(masks) if m is not None]
    if present:
        stacked = torch.stack([torch.as_tensor(np.array(masks[i])) for i in present])
        share = object_attention_share(heatmap[present].cpu(), stacked, grid)
        out[present] = share.numpy()
    return out


@dataclass(frozen=True)
class ChunkExplanation:
    """Everything measured on one chunk: clean logits, heatmap, target and both curves."""

    logits: torch.Tensor  # [B, C] float32
    heatmap: torch.Tensor  # [B, N] float32, rows sum to 1
    target: torch.Tensor  # [B] class whose probability the curves follow
    deletion: torch.Tensor  # [B, K+1] float64, f_k = p_k / p_clean (not clipped)
    insertion: torch.Tensor  # [B, K+1] float64, f_k = p_k


def explain_chunk(
    model: ViTClassifier,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | Sequence[int] | torch.Tensor,
    config: XAIConfig,
    device: torch.device | str = "cpu",
) -> ChunkExplanation:
    """Clean pass (logits + heatmap in one forward) and both curves for one chunk of images."""
    device = torch.device(device)
    host = as_uint8_images(images)
    size = resolve_input_size(model, config.input_size)
    explainer = get_explainer(config.explainer)
    with torch.inference_mode():
        pixel_values = normalise(images_x255(host, size, device))
        with autocast_for(device):
            tokens = model.embed(pixel_values)
            logits, heatmap = explainer(model, tokens)
        logits, heatmap = logits.float(), heatmap.float()
        if config.target == "label":
            target = torch.as_tensor(np.asarray(labels), device=device, dtype=torch.long).view(-1)
            if target.shape[0] != logits.shape[0]:
                raise ValueError(f"{logits.shape[0]} images but {target.shape[0]} labels")
            if bool(((target < 0) | (target >= logits.shape[1])).any()):
                raise ValueError(f"labels must lie in [0, {logits.shape[1]}) for this model")
        else:
            target = logits.argmax(dim=1)
        lp_clean = _target_logprob(logits, target)
        scorer = _ChunkScorer(model, config, device)
        deletion, insertion = _curves(scorer, pixel_values, tokens, heatmap, target, lp_clean)
    return ChunkExplanation(logits, heatmap, target, deletion, insertion)


def _chunk_profile(
    model: ViTClassifier,
    images: torch.Tensor,
    labels: np.ndarray,
    masks: list | None,
    config: XAIConfig,
    device: torch.device,
) -> dict[str, np.ndarray | list]:
    result = explain_chunk(model, images, labels, config, device)
    heat_cpu = result.heatmap.cpu()
    grid = resolve_input_size(model, config.input_size) // model.patch_size
    return {
        "label": labels,
        "target_class": result.target.cpu().numpy().astype(np.int64),
        **prediction_stats(result.logits, labels),
        "attn_entropy": attention_entropy(heat_cpu).numpy(),
        "gini": gini(heat_cpu).numpy(),
        "deletion_auc": normalised_auc(result.deletion).cpu().numpy(),
        "insertion_auc": normalised_auc(result.insertion).cpu().numpy(),
        "object_attention_share": _object_share(heat_cpu, masks, grid),
        "heatmap": list(heat_cpu.numpy()) if config.keep_heatmap else [None] * len(labels),
    }


def compute_xai(
    model: ViTClassifier,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | Sequence[int] | torch.Tensor,
    masks: np.ndarray | torch.Tensor | Sequence | None = None,
    config: XAIConfig | None = None,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """`silver_xai` columns (minus image_id/adapter_id) for uint8 images [B, H, W, 3], input order.

    `masks` is None, a [B, H, W] 0/1 array, or a per-image sequence whose entries may be None;
    rows without a mask get NaN object_attention_share. The model must be in eval mode (adapters
    merged for speed).
    """
    config = config or XAIConfig()
    device = torch.device(device)
    if model.training:
        raise ValueError("compute_xai needs the model in eval mode (call model.eval())")
    host = as_uint8_images(images)
    n = host.shape[0]
    labels_np = np.asarray(labels).reshape(-1).astype(np.int64)
    if labels_np.shape[0] != n:
        raise ValueError(f"{n} images but {labels_np.shape[0]} labels")
    mask_rows = _mask_rows(masks, n)
    resolve_input_size(model, config.input_size)  # fail early on a bad input size
    parts = []
    for sl in iter_batches(n, config.batch_size):
        chunk_masks = None if mask_rows is None else mask_rows[sl]
        parts.append(_chunk_profile(model, host[sl], labels_np[sl], chunk_masks, config, device))
        logger.debug("XAI chunk %d:%d of %d done", sl.start, sl.stop, n)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in XAI_COLUMNS})
    columns = {
        c: (
            [v for p in parts for v in p[c]]
            if c == "heatmap"
            else np.concatenate([p[c] for p in parts])
        )
        for c in XAI_COLUMNS
    }
    return pd.DataFrame(columns)[XAI_COLUMNS]


# --- plain references (tests, naive benchmark baseline) -------------------------------------


def eager_copy(model: ViTClassifier) -> ViTClassifier:
    """A copy of the classifier whose backbone runs eager attention (it can return weights)."""
    eager = copy.deepcopy(model)
    if hasattr(eager.backbone, "set_attn_implementation"):
        eager.backbone.set_attn_implementation("eager")
    else:  # older transformers
        eager.backbone.config._attn_implementation = "eager"
    return eager


def is_eager(model: ViTClassifier) -> bool:
    return getattr(model.backbone.config, "_attn_implementation", None) == "eager"


def eager_last_layer_attention(model: ViTClassifier, pixel_values: torch.Tensor) -> torch.Tensor:
    """The notebook way: eager attention with `output_attentions=True`.

    Returns the last layer's CLS->patch heatmap [B, N] (mean over heads, renormalised). Slow; a
    reference for `attention.last_layer_cls_attention`, never used in the pipeline. A model that
    does not run eager attention already is copied first (see `eager_copy`).
    """
    backbone = (model if is_eager(model) else eager_copy(model)).backbone
    with torch.inference_mode():
        out = backbone(pixel_values=pixel_values, output_attentions=True)
    if not out.attentions or out.attentions[-1] is None:
        raise RuntimeError("the eager backbone returned no attention weights")
    return patch_heatmap(out.attentions[-1][:, :, 0].float(), model.n_prefix)


def _reference_prob(
    model: ViTClassifier,
    pixel_values: torch.Tensor,
    kept: list[int],
    target: int,
    config: XAIConfig,
) -> float:
    """Target probability of one image with only the patches in `kept` present."""
    if config.perturbation == "token_drop":
        tokens = model.embed(pixel_values)
        p = model.n_prefix
        seq = torch.cat([tokens[:, :p], tokens[:, [p + i for i in kept]]], dim=1)
        logits = model.forward_tokens(seq)
    else:
        patch = model.patch_size
        grid = pixel_values.shape[-1] // patch
        if config.pixel_baseline == "mean":
            baseline = torch.zeros_like(pixel_values)
        else:
            baseline = gaussian_blur(pixel_values, config.blur_sigma, config.blur_truncate)
        x = pixel_values.clone()
        for i in set(range(grid * grid)) - set(kept):
            r, c = divmod(i, grid)
            rows = slice(r * patch, (r + 1) * patch)
            cols = slice(c * patch, (c + 1) * patch)
            x[:, :, rows, cols] = baseline[:, :, rows, cols]
        logits = model(x)
    return float(torch.softmax(logits.float(), dim=-1)[0, target])


def reference_deletion_insertion(
    model: ViTClassifier,
    image: np.ndarray,
    label: int,
    heatmap: np.ndarray | Sequence[float] | torch.Tensor,
    config: XAIConfig | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """(deletion AUC, insertion AUC) of one uint8 image, one step per forward, fp32, no reuse."""
    config = config or XAIConfig()
    device = torch.device(device)
    size = resolve_input_size(model, config.input_size)
    heat = np.asarray(torch.as_tensor(heatmap).float().cpu(), dtype=np.float32)
    order = np.argsort(-heat, kind="stable")
    n = len(order)
    with torch.inference_mode():
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(image))[None], size, device)
        probs = torch.softmax(model(x).float(), dim=-1)[0]
        target = int(label) if config.target == "label" else int(probs.argmax())
        p_orig = float(probs[target])
        deletion, insertion = [], []
        for k in range(config.steps + 1):
            n_k = round_half_up(k * n / config.steps)
            most_important = [int(i) for i in order[:n_k]]
            rest = sorted(set(range(n)) - set(most_important))
            deletion.append(_reference_prob(model, x, rest, target, config) / p_orig)
            insertion.append(_reference_prob(model, x, sorted(most_important), target, config))
    xs = np.linspace(0.0, 1.0, config.steps + 1)
    return float(np.trapezoid(deletion, xs)), float(np.trapezoid(insertion, xs))


def round_half_up(x: float) -> int:
    """Nearest integer, halves up (Python's round() would round halves to even)."""
    return math.floor(x + 0.5)
