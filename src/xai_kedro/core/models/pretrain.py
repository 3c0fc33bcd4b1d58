"""Supervised pre-training of the `base` env's small DINOv2-architecture backbone."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig

from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.data.augment import AugmentConfig
from xai_kedro.core.models.backbone import build_backbone, freeze
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.training import LoopSettings, fit


def pretrain_backbone(
    images: np.ndarray,
    labels: np.ndarray,
    config: PretrainedConfig,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    device: torch.device | str | None = None,
    augment: dict[str, Any] | None = None,
    warmup_ratio: float = 0.1,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Supervised pre-training of a fresh DINOv2-architecture ViT (all weights trained).

    Labels are class indices 0..K-1. AdamW with linear warmup + cosine decay, bf16 autocast on
    CUDA. Returns the backbone (frozen, eval, on CPU) and the per-epoch history (train_loss,
    train_accuracy, lr; eval_* when a validation split is given). The head is discarded.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    num_classes = int(labels.max()) + 1
    if num_classes < 2:
        raise ValueError("pre-training needs at least two classes")
    with seeded_rng(seed):
        backbone = build_backbone(config)
        classifier = ViTClassifier(backbone, num_classes)
    classifier.requires_grad_(True)
    settings = LoopSettings(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        optimizer="adamw",
        lr_schedule="cosine",
        warmup_ratio=warmup_ratio,
        augment=AugmentConfig.from_dict(augment),
    )
    history = fit(
        classifier,
        settings,
        images,
        labels,
        input_size=int(config.image_size),
        device=device,
        val_images=val_images,
        val_labels=val_labels,
        progress=progress,
        desc="pretrain",
    )
    return freeze(classifier.backbone.cpu()), history
