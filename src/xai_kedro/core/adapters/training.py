"""Fine-tune one adapter with the shared loop; validation metrics for the zoo manifest."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from xai_kedro.core.adapters.attach import count_trainable, has_lora
from xai_kedro.core.adapters.config import AdapterConfig
from xai_kedro.core.common.device import pick_device
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.training import LoopSettings, fit, format_metrics

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Final validation metrics (manifest columns) and the per-epoch history."""

    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


# The LoopSettings fields an AdapterConfig names otherwise; every other one has the same name.
_LOOP_FIELD_IN_CONFIG = {"augment": "augmentation"}


def loop_settings(cfg: AdapterConfig) -> LoopSettings:
    """The loop settings an adapter config implies: each `LoopSettings` field is the config's
    field of that name, so a new loop setting is declared in the two classes and copied here
    by itself."""
    return LoopSettings(
        **{
            f.name: getattr(cfg, _LOOP_FIELD_IN_CONFIG.get(f.name, f.name))
            for f in fields(LoopSettings)
        }
    )


def train_adapter(
    classifier: ViTClassifier,
    cfg: AdapterConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    *,
    input_size: int,
    device: torch.device | str | None,
    progress: bool = True,
) -> TrainResult:
    """Train an adapter already attached with `attach_adapter`; metrics on the validation split.

    metrics: train_loss (last epoch mean), eval_loss, accuracy, f1, precision, recall (macro),
    trainable_params, trainable_pct (of all parameters), duration_s (wall time of the loop,
    validation passes included). The validation metrics are those of the last epoch's pass.
    """
    if cfg.rank > 0 and not has_lora(classifier.backbone):
        raise ValueError(f"Adapter {cfg.adapter_id}: call attach_adapter(classifier, cfg) first")
    if any(p.requires_grad for n, p in classifier.backbone.named_parameters() if "lora_" not in n):
        raise ValueError(
            f"Adapter {cfg.adapter_id}: backbone weights are trainable; attach_adapter freezes them"
        )
    device = pick_device(device) if not isinstance(device, torch.device) else device
    start = time.perf_counter()
    history = fit(
        classifier,
        loop_settings(cfg),
        train_images,
        train_labels,
        input_size=input_size,
        device=device,
        val_images=val_images,
        val_labels=val_labels,
        progress=progress,
        desc=cfg.adapter_id,
    )
    final = history[-1]  # its validation pass ran on the final weights
    trainable, total = count_trainable(classifier)
    metrics = {
        "train_loss": float(final["train_loss"]),
        "train_accuracy": float(final["train_accuracy"]),
        "eval_loss": float(final["eval_loss"]),
        "accuracy": float(final["eval_accuracy"]),
        "f1": float(final["eval_f1"]),
        "precision": float(final["eval_precision"]),
        "recall": float(final["eval_recall"]),
        "trainable_params": int(trainable),
        "trainable_pct": 100.0 * trainable / total,
        "duration_s": time.perf_counter() - start,
    }
    logger.info("Adapter %s done: %s", cfg.adapter_id, format_metrics(metrics))
    return TrainResult(metrics=metrics, history=history)
