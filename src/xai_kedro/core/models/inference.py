"""Batched inference shared by the XAI and OOD stages: one way to move, preprocess and score images.

Images stay uint8 on the host and travel to the device one batch at a time (pinned memory on
CUDA); resizing, the optional transform (corruptions act here, on the 0..255 image at model
resolution) and normalisation all happen on the device; the forward runs under
`inference_mode` with bf16 autocast on CUDA and plain fp32 on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from xai_kedro.core.common.columns import Column, names
from xai_kedro.core.common.device import autocast_for
from xai_kedro.core.data.preprocessing import normalise, resize_uint8
from xai_kedro.core.models.families import Triple, pixel_stats

logger = logging.getLogger(__name__)

# (x255 [B, 3, S, S] float on the 0..255 scale, per-image int64 seeds [B]) -> same shape.
Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# The columns `prediction_stats` returns, declared once for every Silver table that carries them.
PREDICTION_COLUMNS: tuple[Column, ...] = (
    Column("pred", "int", "clean argmax class"),
    Column("confidence", "double", "max-softmax probability", role="confidence"),
    Column("margin", "double", "top-1 minus top-2 probability", role="confidence"),
    Column("pred_entropy", "double", "predictive entropy (nats)", role="confidence"),
    Column(
        "energy", "double", "free energy -logsumexp(logits) (Liu et al. 2020)", role="confidence"
    ),
    Column("is_correct", "bool", "pred == label", role="label", label_free=False),
)
LABEL_COLUMN = Column("label", "int", "true class", role="label", label_free=False)
# What identifies one evaluation condition of `evaluate_transforms`.
CONDITION_COLUMNS: tuple[Column, ...] = (
    Column("corruption", "string", "corruption name", role="key"),
    Column("severity", "string", "severity level", role="key"),
    Column("severity_value", "double", "the corruption's parameter at that level", role="payload"),
)
# The full logit vector of every row: COT, nuclear norm and MaNo need the whole softmax (MaNo
# the logits themselves), not only its summaries above.
LOGITS_COLUMN = Column("logits", "float_array", "classifier logits, one per class", role="payload")
OOD_COLUMNS = names((*CONDITION_COLUMNS, LABEL_COLUMN, *PREDICTION_COLUMNS, LOGITS_COLUMN))


def prediction_stats(
    logits: torch.Tensor, labels: torch.Tensor | np.ndarray
) -> dict[str, np.ndarray]:
    """Per-row prediction, max-softmax confidence, top1-top2 margin, entropy (nats), free energy
    -logsumexp(logits) (Liu et al., "Energy-based Out-of-distribution Detection"), correctness.

    The softmax is taken in float32 whatever the logits' dtype, so bf16 logits give stable numbers.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be [B, C], got shape {tuple(logits.shape)}")
    labels_t = torch.as_tensor(labels).reshape(-1).to(device="cpu", dtype=torch.long)
    if labels_t.shape[0] != logits.shape[0]:
        raise ValueError(f"{logits.shape[0]} logit rows but {labels_t.shape[0]} labels")
    probs = torch.softmax(logits.detach().float().cpu(), dim=-1)
    top = probs.topk(min(2, probs.shape[1]), dim=-1)
    confidence = top.values[:, 0]
    second = top.values[:, 1] if probs.shape[1] > 1 else torch.zeros_like(confidence)
    pred = top.indices[:, 0]
    entropy = torch.special.entr(probs).sum(dim=-1)  # entr(0) = 0: no NaN from 0 * log 0
    energy = -torch.logsumexp(logits.detach().float().cpu(), dim=-1)
    return {
        "pred": pred.numpy().astype(np.int64),
        "confidence": confidence.numpy().astype(np.float64),
        "margin": (confidence - second).numpy().astype(np.float64),
        "pred_entropy": entropy.numpy().astype(np.float64),
        "energy": energy.numpy().astype(np.float64),
        "is_correct": (pred == labels_t).numpy(),
    }


def iter_batches(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices covering range(n), each at most `batch_size` long."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def as_uint8_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Validate a uint8 [N, H, W, 3] stack and return it as a host tensor (no copy for numpy)."""
    tensor = (
        torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    )
    if tensor.dtype != torch.uint8:
        raise TypeError(f"images must be uint8, got {tensor.dtype}")
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"images must be [N, H, W, 3], got shape {tuple(tensor.shape)}")
    return tensor


def resolve_input_size(model: nn.Module, input_size: int | None) -> int:
    """Model input resolution: `input_size` or the backbone's own; must be a multiple of the patch."""
    size = int(input_size) if input_size else int(model.image_size)
    if size % model.patch_size != 0:
        raise ValueError(
            f"input_size {size} is not a multiple of the patch size {model.patch_size}"
        )
    return size


def to_device_uint8(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host uint8 batch -> device; pinned + non-blocking on CUDA so the copy overlaps compute."""
    if device.type == "cuda" and batch.device.type == "cpu":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def images_x255(batch: torch.Tensor, input_size: int, device: torch.device) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, S, S] on the 0..255 scale, on `device`."""
    return resize_uint8(to_device_uint8(batch, device), input_size)


def seeds_tensor(seeds: np.ndarray | None, n: int) -> torch.Tensor:
    """Per-image int64 seeds; defaults to the image index (pass image-derived seeds in pipelines)."""
    if seeds is None:
        return torch.arange(n, dtype=torch.long)
    out = torch.as_tensor(np.asarray(seeds), dtype=torch.long).reshape(-1)
    if out.shape[0] != n:
        raise ValueError(f"{out.shape[0]} seeds for {n} images")
    return out


def model_input(
    x255: torch.Tensor,
    transform: Transform | None = None,
    seeds: torch.Tensor | None = None,
    stats: tuple[Triple, Triple] | None = None,
) -> torch.Tensor:
    """Apply `transform` (if any) to the 0..255 image, then normalise with `stats` (mean, std;
    default ImageNet, DINOv2's): the model's pixel input (see `families.pixel_stats`)."""
    if transform is not None:
        if seeds is None:
            raise ValueError("a transform needs per-image seeds")
        out = transform(x255.clone(), seeds.to(x255.device))
        if out.shape != x255.shape:
            raise ValueError(
                f"transform changed the shape {tuple(x255.shape)} -> {tuple(out.shape)}"
            )
        x255 = out.float()
    return normalise(x255) if stats is None else normalise(x255, *stats)


def predict_logits(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    *,
    input_size: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    transform: Transform | None = None,
    seeds: np.ndarray | None = None,
) -> torch.Tensor:
    """Logits [N, C] (float32, CPU) of `model` on uint8 images, optionally transformed first."""
    device = torch.device(device)
    host = as_uint8_images(images)
    size = resolve_input_size(model, input_size)
    all_seeds = seeds_tensor(seeds, host.shape[0])
    stats = pixel_stats(model)
    out = []
    with torch.inference_mode():
        for sl in iter_batches(host.shape[0], batch_size):
            x255 = images_x255(host[sl], size, device)
            x = model_input(x255, transform, all_seeds[sl], stats)
            with autocast_for(device):
                out.append(model(x).float().cpu())
    if not out:
        raise ValueError("no images to predict")
    return torch.cat(out)


@dataclass(frozen=True)
class TransformSpec:
    """One evaluation condition: a corruption at one severity (`fn=None` means the clean image)."""

    corruption: str
    severity: str
    severity_value: float
    fn: Transform | None


def evaluate_transforms(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    transforms: Sequence[TransformSpec],
    *,
    input_size: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    seeds: np.ndarray | Callable[[TransformSpec], np.ndarray] | None = None,
) -> pd.DataFrame:
    """Prediction stats of every image under every transform: the `silver_ood` rows minus the ids.

    Rows are transform-major: row `t * N + i` is transform `t` on image `i` (so the caller attaches
    ids with `np.tile(image_ids, len(transforms))`). Each image chunk is resized once and all its
    transformed copies go through ONE forward of about `batch_size` rows. `seeds` gives per-image
    seeds, either one array for every transform or a function of the transform (default: the image
    index).
    """
    if not transforms:
        raise ValueError("no transforms to evaluate")
    device = torch.device(device)
    host = as_uint8_images(images)
    n = host.shape[0]
    if n == 0:
        raise ValueError("no images to evaluate")
    labels_np = np.asarray(labels).reshape(-1).astype(np.int64)
    if labels_np.shape[0] != n:
        raise ValueError(f"{n} images but {labels_np.shape[0]} labels")
    size = resolve_input_size(model, input_size)
    per_spec_seeds = [
        seeds_tensor(seeds(spec) if callable(seeds) else seeds, n) for spec in transforms
    ]
    n_t = len(transforms)
    logits = _transformed_logits(
        model, host, transforms, per_spec_seeds, size=size, device=device, batch_size=batch_size
    )
    flat = logits.reshape(n_t * n, -1)
    stats = prediction_stats(flat, np.tile(labels_np, n_t))
    frame = pd.DataFrame(
        {
            "corruption": np.repeat([t.corruption for t in transforms], n).astype(object),
            "severity": np.repeat([str(t.severity) for t in transforms], n).astype(object),
            "severity_value": np.repeat([float(t.severity_value) for t in transforms], n),
            "label": np.tile(labels_np, n_t),
            **stats,
            "logits": list(flat.numpy().astype(np.float32)),
        }
    )
    logger.debug("evaluated %d images x %d transforms", n, n_t)
    return frame[OOD_COLUMNS]


def _transformed_logits(
    model: nn.Module,
    host: torch.Tensor,
    transforms: Sequence[TransformSpec],
    per_spec_seeds: Sequence[torch.Tensor],
    *,
    size: int,
    device: torch.device,
    batch_size: int,
) -> torch.Tensor:
    """Logits [T, N, C] of every image under every transform: each image chunk is resized once
    and all its transformed copies go through one forward of about `batch_size` rows."""
    n, n_t = host.shape[0], len(transforms)
    chunk = max(1, batch_size // n_t)
    logits = torch.empty(0)
    stats = pixel_stats(model)
    with torch.inference_mode():
        for sl in iter_batches(n, chunk):
            x255 = images_x255(host[sl], size, device)
            x = torch.cat(
                [
                    model_input(x255, spec.fn, s[sl], stats)
                    for spec, s in zip(transforms, per_spec_seeds, strict=True)
                ]
            )
            with autocast_for(device):
                out = model(x).float().cpu()
            if logits.numel() == 0:
                logits = torch.empty(n_t, n, out.shape[1])
            logits[:, sl] = out.view(n_t, -1, out.shape[1])
    return logits
