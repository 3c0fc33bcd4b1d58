"""Supervised pre-training of the `base` env's small DINOv2-architecture backbone."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig

from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.common.settings import Settings, check_keys
from xai_kedro.core.data.augment import AugmentConfig
from xai_kedro.core.models.backbone import build_backbone, freeze, small_backbone_config
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.training import LoopSettings, fit


@dataclass(frozen=True)
class PretrainSettings(Settings):
    """The pre-training block (parameters `backbone.pretrain`): the model shape and the loop.

    enabled: whether the ingestion pre-trains the backbone at all (read by its node).
    model: `core.models.backbone.small_backbone_config` arguments (the model shape).
    epochs, batch_size, lr, weight_decay, warmup_ratio, augment: the training loop (AdamW,
        linear warmup then cosine decay).
    """

    PATH = "backbone.pretrain"

    enabled: bool = False
    model: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise the fields once here
        set_(self, "model", dict(self.model or {}))
        check_keys(self.model, inspect.signature(small_backbone_config).parameters, _MODEL_PATH)
        for name in ("epochs", "batch_size"):
            set_(self, name, int(getattr(self, name)))
        for name in ("lr", "weight_decay", "warmup_ratio"):
            set_(self, name, float(getattr(self, name)))
        set_(self, "augment", AugmentConfig.from_params(self.augment, f"{self.PATH}.augment"))

    def backbone_config(self) -> PretrainedConfig:
        """The config of the fresh backbone to pre-train."""
        return small_backbone_config(**self.model)

    def loop(self, seed: int) -> LoopSettings:
        """The training loop's settings (seeded by the run's seed)."""
        return LoopSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=seed,
            optimizer="adamw",
            lr_schedule="cosine",
            warmup_ratio=self.warmup_ratio,
            augment=self.augment,
        )


_MODEL_PATH = f"{PretrainSettings.PATH}.model"


def pretrain_backbone(
    images: np.ndarray,
    labels: np.ndarray,
    settings: PretrainSettings,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
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
    config = settings.backbone_config()
    with seeded_rng(seed):
        backbone = build_backbone(config)
        classifier = ViTClassifier(backbone, num_classes)
    classifier.requires_grad_(True)
    history = fit(
        classifier,
        settings.loop(seed),
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
