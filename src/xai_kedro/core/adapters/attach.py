"""Attach a fresh, seeded LoRA/DoRA adapter to a classifier for training."""

from __future__ import annotations

import logging

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from xai_kedro.core.adapters.config import AdapterConfig
from xai_kedro.core.adapters.targets import resolve_target_modules
from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.models.classifier import ViTClassifier

logger = logging.getLogger(__name__)


ADAPTER_NAME = "default"


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in model.modules())


def lora_config_for(cfg: AdapterConfig, target_modules: list[str]) -> LoraConfig:
    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        use_dora=cfg.use_dora,
        use_rslora=cfg.use_rslora,
        target_modules=list(target_modules),
        bias="none",
    )


def attach_adapter(classifier: ViTClassifier, cfg: AdapterConfig) -> ViTClassifier:
    """Freeze the backbone, re-initialise the head and inject LoRA/DoRA (rank > 0), seeded.

    LoRA layers are injected in place (`inject_adapter_in_model`), so `classifier.backbone`
    stays the DINOv2 model the rest of the code expects; the head stays trainable and outside
    PEFT. Head and LoRA initialisation are drawn from `cfg.seed`, so training is reproducible.
    """
    if has_lora(classifier.backbone) or hasattr(classifier.backbone, "peft_config"):
        raise ValueError("The backbone already carries an adapter; attach to a fresh copy")
    classifier.backbone.requires_grad_(False)
    with seeded_rng(cfg.seed):
        classifier.head.reset_parameters()
        if cfg.rank > 0:
            targets = resolve_target_modules(classifier.backbone, cfg.target_roles)
            inject_adapter_in_model(
                lora_config_for(cfg, targets), classifier.backbone, ADAPTER_NAME
            )
    classifier.head.requires_grad_(True)
    trainable, total = count_trainable(classifier)
    logger.info(
        "Adapter %s: %d trainable of %d parameters (%.2f%%)",
        cfg.adapter_id,
        trainable,
        total,
        100.0 * trainable / total,
    )
    return classifier


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(parameters with requires_grad, all parameters), shared tensors counted once."""
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total
