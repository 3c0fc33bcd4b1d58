"""The XAI profile of a batch of images under one model: the rows of `silver_xai`, fast.

Per image chunk: one clean forward gives logits and the heatmap (same pass); then the deletion
and insertion curves (K+1 points each) are scored by `core.xai.curves` with as few, as large
forwards as possible (token drop: every distinct token count is one batched forward). Deletion
k=0 and insertion k=K are the clean image and reuse the clean pass; the step with no patch left
is the image's own blurred copy; so an image costs 1 + (2K - 1) forwards. The curves follow the
clean predicted class by default (label-free, as in RISE). Every metric column is declared once
in `core.xai.metrics.XAI_METRICS`; `core.xai.references` holds the slow one-image references the
tests compare against.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from xai_kedro.core.common.device import autocast_for
from xai_kedro.core.data.preprocessing import normalise
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import pixel_stats
from xai_kedro.core.models.inference import (
    as_uint8_images,
    images_x255,
    iter_batches,
    prediction_stats,
    resolve_input_size,
)
from xai_kedro.core.xai.columns import XAI_COLUMNS
from xai_kedro.core.xai.curves import ExplainedChunk, _ChunkScorer, _curves, _target_logprob
from xai_kedro.core.xai.explainers import get_explainer
from xai_kedro.core.xai.metrics import XAI_METRICS, MetricInputs
from xai_kedro.core.xai.settings import XAIConfig

logger = logging.getLogger(__name__)


def _mask_rows(masks: np.ndarray | torch.Tensor | Sequence | None, n: int) -> list | None:
    """Per-image masks (array or None) or None when no image has one."""
    if masks is None:
        return None
    rows = list(masks)
    if len(rows) != n:
        raise ValueError(f"{len(rows)} masks for {n} images")
    return rows if any(m is not None for m in rows) else None


@dataclass(frozen=True)
class ChunkExplanation:
    """Everything measured on one chunk: clean logits, heatmap, target and both curves."""

    logits: torch.Tensor  # [B, C] float32
    heatmap: torch.Tensor  # [B, N] float32, rows sum to 1
    target: torch.Tensor  # [B] class whose probability the curves follow
    deletion: torch.Tensor  # [B, K+1] float64 target probability, most important removed first
    insertion: torch.Tensor  # [B, K+1] float64 target probability, most important revealed first
    fractions: torch.Tensor  # [K+1] float64 true fraction n_k / N of patches removed/revealed


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
    explainer = get_explainer(config.explainer, **config.explainer_settings)
    with torch.inference_mode():
        pixel_values = normalise(images_x255(host, size, device), *pixel_stats(model))
        with autocast_for(device):
            tokens = model.embed(pixel_values)
            logits, heatmap = explainer(model, tokens)
        logits, heatmap = logits.float(), heatmap.float()
        label_t = torch.as_tensor(np.asarray(labels), device=device, dtype=torch.long).view(-1)
        if label_t.shape[0] != logits.shape[0]:
            raise ValueError(f"{logits.shape[0]} images but {label_t.shape[0]} labels")
        if bool(((label_t < 0) | (label_t >= logits.shape[1])).any()):
            raise ValueError(f"labels must lie in [0, {logits.shape[1]}) for this model")
        target = label_t if config.target == "label" else logits.argmax(dim=1)
        lp_clean = _target_logprob(logits, target)
        scorer = _ChunkScorer(model, config, device)
        curves = _curves(scorer, ExplainedChunk(pixel_values, tokens, heatmap, target, lp_clean))
    return ChunkExplanation(
        logits, heatmap, target, curves.deletion, curves.insertion, curves.fractions
    )


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
    inputs = MetricInputs(
        heatmap=heat_cpu,
        deletion=result.deletion.cpu(),
        insertion=result.insertion.cpu(),
        fractions=result.fractions.cpu(),
        masks=masks,
        grid=resolve_input_size(model, config.input_size) // model.patch_size,
    )
    return {
        "label": labels,
        "target_class": result.target.cpu().numpy().astype(np.int64),
        **prediction_stats(result.logits, labels),
        **{name: metric.compute(inputs) for name, metric in XAI_METRICS.items()},
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
