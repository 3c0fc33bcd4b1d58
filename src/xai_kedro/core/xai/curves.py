"""Deletion and insertion curves of a chunk of images, with as few, as large forwards as possible.

* `token_drop` (default): the chunk is embedded ONCE; a perturbation step keeps CLS + registers +
  a subset of patch tokens gathered from that embedding (position embeddings stay correct). All
  images share the step's token count, and deletion step k (N - n_k tokens) pairs with the
  insertion step that keeps the same count, so every distinct count is one batched forward
  (split by a token budget).
* `pixel`: removed patches are replaced by a baseline (mean colour = 0 after normalisation, or a
  Gaussian-blurred copy) and the full sequence runs, as in RISE.

Both curves score the raw probability of the target class (RISE: Petsiuk et al., "RISE:
Randomized Input Sampling for Explanation of Black-box Models"), so they and their areas lie in
[0, 1]. Deletion k = 0 and insertion k = K are the clean image (they reuse the clean pass); the
step with no patch left is, by default, each image's blurred copy (`XAIConfig.empty_input`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from xai_kedro.core.common.device import autocast_for
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.inference import (
    iter_batches,
)
from xai_kedro.core.xai.settings import XAIConfig


def step_counts(n_patches: int, steps: int) -> list[int]:
    """n_k = round(k N / K) patches removed/revealed at step k = 0..K (halves round up)."""
    return [(2 * k * n_patches + steps) // (2 * steps) for k in range(steps + 1)]


def importance_order(heatmap: torch.Tensor) -> torch.Tensor:
    """Patch indices [B, N] most important first; ties keep the lower index first (stable)."""
    return torch.argsort(-heatmap, dim=1, stable=True)


def separable_gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
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
    return separable_gaussian_blur(pixel_values, config.blur_sigma, config.blur_truncate)


def patch_pixel_mask(keep: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """[R, N] bool (patch kept) -> [R, 1, grid*patch, grid*patch] float 0/1 pixel mask."""
    m = keep.view(-1, grid, grid).to(torch.float32)
    m = m.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)
    return m[:, None]


def _target_logprob(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).gather(1, target[:, None])[:, 0]


# A perturbation job: ("del", n) removes the n most important patches, ("ins", n) keeps only them.
_CLEAN = ("clean", 0)


@dataclass(frozen=True)
class Curves:
    """Both curves of a chunk: target probabilities p_k [B, K+1] (float64, in [0, 1]) at the true
    fractions n_k / N [K+1] of patches removed (deletion) or revealed (insertion)."""

    deletion: torch.Tensor
    insertion: torch.Tensor
    fractions: torch.Tensor


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

    def blurred(self, pixel_values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Target log-probability of each image's own blurred copy (the empty input): no patch
        of the image is left, yet the input differs per image, so no class-dependent constant
        is shared by every image."""
        blurred = separable_gaussian_blur(
            pixel_values, self.config.blur_sigma, self.config.blur_truncate
        )
        out = torch.empty(blurred.shape[0], device=blurred.device, dtype=torch.float32)
        per_forward = max(1, self.config.max_batch_tokens // (self.model.n_prefix + 1))
        for sl in iter_batches(blurred.shape[0], per_forward):
            with autocast_for(self.device):
                logits = self.model(blurred[sl])
            out[sl] = _target_logprob(logits, target[sl])
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


@dataclass(frozen=True)
class ExplainedChunk:
    """One chunk as the curves see it: normalised pixels [B, 3, S, S], their embedded tokens,
    the heatmap [B, N] to follow, the explained class [B] and its clean log-probability [B]."""

    pixel_values: torch.Tensor
    tokens: torch.Tensor
    heatmap: torch.Tensor
    target: torch.Tensor
    lp_clean: torch.Tensor


def score_steps(
    scorer: _ChunkScorer, chunk: ExplainedChunk, counts: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Target log-probabilities [B, S] (float64) with the ``counts`` most important patches
    removed and with only them kept, every distinct input scored once (shared by the deletion
    and insertion curves and by Fidelity+/-)."""
    pixel_values, tokens, target = chunk.pixel_values, chunk.tokens, chunk.target
    b, n = chunk.heatmap.shape
    del_keys = [_job_key("del", c, n) for c in counts]
    ins_keys = [_job_key("ins", c, n) for c in counts]
    empty = ("del", n)
    jobs = [k for k in dict.fromkeys(del_keys + ins_keys) if k != _CLEAN]
    logp: dict[tuple[str, int], torch.Tensor] = {_CLEAN: chunk.lp_clean}
    if scorer.config.empty_input == "blur" and empty in jobs:
        jobs.remove(empty)
        logp[empty] = scorer.blurred(pixel_values, target)
    order = importance_order(chunk.heatmap)
    if scorer.config.perturbation == "token_drop":
        by_count: dict[int, list[tuple[str, int]]] = {}
        for key in jobs:
            kept = n - key[1] if key[0] == "del" else key[1]
            by_count.setdefault(kept, []).append(key)
        for group in by_count.values():
            kept = torch.cat([_kept_indices(key, order) for key in group])
            scores = scorer.token_drop(tokens, kept, target).view(len(group), b)
            logp.update(zip(group, scores, strict=True))
    elif jobs:
        baseline = pixel_baseline(pixel_values, scorer.config)
        rank = torch.argsort(order, dim=1)
        keep = torch.cat([_keep_mask(key, rank) for key in jobs])
        scores = scorer.pixel(pixel_values, baseline, keep, target).view(len(jobs), b)
        logp.update(zip(jobs, scores, strict=True))
    del_lp = torch.stack([logp[k] for k in del_keys], dim=1).double()
    ins_lp = torch.stack([logp[k] for k in ins_keys], dim=1).double()
    return del_lp, ins_lp


def _curves(scorer: _ChunkScorer, chunk: ExplainedChunk) -> Curves:
    """Deletion and insertion curves of one chunk (see `Curves`)."""
    n = chunk.heatmap.shape[1]
    counts = step_counts(n, scorer.config.steps)
    del_lp, ins_lp = score_steps(scorer, chunk, counts)
    fractions = torch.tensor(counts, dtype=torch.float64, device=del_lp.device) / n
    return Curves(torch.exp(del_lp), torch.exp(ins_lp), fractions)
