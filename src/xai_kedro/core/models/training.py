"""The training loop shared by adapter fine-tuning and the small-backbone pre-training.

Images stay uint8 on the CPU until a batch is drawn; augmentation and normalisation run on the
device. The loop is seeded end to end (shuffling: numpy Generator; augmentation: CPU torch
Generator; dropout and initialisation: torch RNG forked from the seed), so two CPU runs give
identical weights. bf16 autocast on CUDA, fp32 on CPU (`core.common.device`).

Learning-rate schedule: linear warmup over `warmup_ratio` of the optimizer steps, then either
cosine decay towards 0 ("cosine", default) or flat ("constant"). The model after the last
epoch is kept (no best-epoch selection: the validation split only reports).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import precision_recall_fscore_support
from torch import nn
from tqdm.auto import tqdm

from xai_kedro.core.common.device import autocast_for, pick_device
from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.data.augment import AugmentConfig, augment_batch, eval_view
from xai_kedro.core.data.preprocessing import normalise
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import pixel_stats

logger = logging.getLogger(__name__)

DEFAULT_EVAL_BATCH = 64
# Parameters that should not be pulled towards zero by weight decay even though they are >1-D.
NO_DECAY_NAMES = ("cls_token", "register_tokens", "mask_token", "position_embeddings")


@dataclass(frozen=True)
class LoopSettings:
    """Optimisation settings of one training run (built from an AdapterConfig or pretrain args)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    optimizer: str = "adamw"
    momentum: float = 0.9
    grad_accumulation: int = 1
    lr_schedule: str = "cosine"
    warmup_ratio: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base LR at optimizer step `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def check_images(images: np.ndarray, labels: np.ndarray, num_classes: int, what: str) -> None:
    """Fail early and clearly on the wrong layout, dtype or label range."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TypeError(
            f"{what} images must be a uint8 numpy array, got {getattr(images, 'dtype', type(images))}"
        )
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{what} images must be [N, H, W, 3], got {images.shape}")
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"{what} labels must have shape ({images.shape[0]},), got {labels.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{what} split is empty")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{what} labels must be integers, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"{what} labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]"
        )


def _model_input(batch_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [B, H, W, 3] on CPU -> float [B, 3, H, W] (0..255) on the device."""
    if device.type == "cuda":  # pinned + non-blocking: the copy overlaps compute
        batch_uint8 = batch_uint8.pin_memory()
    return batch_uint8.to(device, non_blocking=True).permute(0, 3, 1, 2).float()


def _param_groups(params: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Decay weight matrices only: biases, norms, layer scales, DoRA magnitudes and tokens are not."""
    decay, no_decay = [], []
    for name, param in params:
        if param.ndim >= 2 and not any(token in name for token in NO_DECAY_NAMES):
            decay.append(param)
        else:
            no_decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def _optimizer(model: nn.Module, settings: LoopSettings) -> torch.optim.Optimizer:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("The model has no trainable parameters")
    groups = _param_groups(named, settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=settings.lr)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum)
    raise ValueError(f"Unknown optimizer {settings.optimizer!r}")


@torch.inference_mode()
def evaluate(
    classifier: ViTClassifier,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    input_size: int,
    device: torch.device | str | None,
    batch_size: int = DEFAULT_EVAL_BATCH,
    crop_size: int | None = None,
) -> dict[str, float]:
    """Mean cross-entropy, accuracy and macro F1/precision/recall (sklearn) on one split.

    `crop_size` is the training crop: evaluation takes the matching centre crop (eval_view).
    """
    device = pick_device(device) if not isinstance(device, torch.device) else device
    num_classes = int(classifier.head.out_features)
    check_images(images, labels, num_classes, "evaluation")
    was_training = classifier.training
    classifier.eval()
    data = torch.from_numpy(np.ascontiguousarray(images))
    preds, loss_sum = [], torch.zeros((), device=device)
    stats = pixel_stats(classifier)
    for start in range(0, len(images), batch_size):
        x = _model_input(data[start : start + batch_size], device)
        x = normalise(eval_view(x, crop_size, input_size), *stats)
        with autocast_for(device):
            logits = classifier(x)
        target = torch.as_tensor(labels[start : start + batch_size], device=device).long()
        loss_sum += F.cross_entropy(logits.float(), target, reduction="sum")
        preds.append(logits.argmax(dim=-1))
    classifier.train(was_training)
    pred = torch.cat(preds).cpu().numpy()  # one device sync per evaluation
    labels = np.asarray(labels)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, pred, average="macro", zero_division=0
    )
    return {
        "loss": float(loss_sum.item()) / len(labels),
        "accuracy": float((pred == labels).mean()),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "n": int(len(labels)),
    }


def fit(
    classifier: ViTClassifier,
    settings: LoopSettings,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    *,
    input_size: int,
    device: torch.device | str | None,
    val_images: np.ndarray | None = None,
    val_labels: np.ndarray | None = None,
    progress: bool = True,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Train the parameters that require grad; returns one history row per epoch.

    Each row: epoch, train_loss (mean over the epoch's augmented samples), train_accuracy, lr
    (at the epoch's last step) and, with a validation split, eval_loss/accuracy/f1/precision/recall.
    """
    val = (val_images, val_labels)
    has_val = val_images is not None and val_labels is not None
    device = _on_device(classifier, (train_images, train_labels), val if has_val else None, device)
    n = len(train_images)
    batches_per_epoch = math.ceil(n / settings.batch_size)
    data = torch.from_numpy(np.ascontiguousarray(train_images))
    targets_all = torch.from_numpy(np.asarray(train_labels).astype(np.int64))
    history: list[dict[str, float]] = []

    with seeded_rng(settings.seed):
        optimizer, scheduler = _optimizer_and_schedule(classifier, settings, batches_per_epoch)
        order_rng = np.random.default_rng(settings.seed)
        aug_gen = torch.Generator().manual_seed(settings.seed)
        bar = tqdm(
            total=settings.epochs * batches_per_epoch, desc=desc, disable=not progress, leave=False
        )
        for epoch in range(settings.epochs):
            classifier.train()
            order = torch.from_numpy(order_rng.permutation(n))
            row: dict[str, Any] = {"epoch": epoch + 1}
            row.update(
                _train_epoch(
                    classifier,
                    (optimizer, scheduler),
                    settings,
                    (data, targets_all, order),
                    input_size=input_size,
                    device=device,
                    aug_gen=aug_gen,
                    bar=bar,
                )
            )
            if has_val:
                row.update(_validation(classifier, val, settings, input_size, device))
            history.append(row)
            bar.set_postfix(epoch=epoch + 1, loss=f"{row['train_loss']:.3f}")
            logger.info("%s epoch %d/%d: %s", desc, epoch + 1, settings.epochs, format_metrics(row))
        bar.close()
    classifier.eval()
    return history


def _on_device(
    classifier: ViTClassifier,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    device: torch.device | str | None,
) -> torch.device:
    """Check both splits against the head, then move the classifier to the resolved device."""
    device = pick_device(device) if not isinstance(device, torch.device) else device
    num_classes = int(classifier.head.out_features)
    check_images(*train, num_classes, "training")
    if val is not None:
        check_images(*val, num_classes, "validation")
    classifier.to(device)
    return device


def _validation(
    classifier: ViTClassifier,
    val: tuple[np.ndarray, np.ndarray],
    settings: LoopSettings,
    input_size: int,
    device: torch.device,
) -> dict[str, float]:
    """The epoch's eval_* columns: the validation split in the training crop's centre view."""
    metrics = evaluate(
        classifier,
        *val,
        input_size=input_size,
        device=device,
        batch_size=max(settings.batch_size, DEFAULT_EVAL_BATCH),
        crop_size=settings.augment.crop_size,
    )
    return {f"eval_{k}": v for k, v in metrics.items() if k != "n"}


def _optimizer_and_schedule(
    classifier: nn.Module, settings: LoopSettings, batches_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer and its warmup + decay schedule over every optimizer step of the run."""
    steps_per_epoch = math.ceil(batches_per_epoch / settings.grad_accumulation)
    total_steps = settings.epochs * steps_per_epoch
    warmup_steps = int(round(settings.warmup_ratio * total_steps))
    optimizer = _optimizer(classifier, settings)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, total_steps, warmup_steps, settings.lr_schedule),
    )
    return optimizer, scheduler


def _train_epoch(
    classifier: ViTClassifier,
    optimisation: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR],
    settings: LoopSettings,
    split: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    input_size: int,
    device: torch.device,
    aug_gen: torch.Generator,
    bar: Any,
) -> dict[str, float]:
    """One pass over `split` = (uint8 images, labels, sample order): its mean loss, accuracy and
    the LR of its last optimizer step. Micro-batches accumulate `grad_accumulation` at a time."""
    optimizer, scheduler = optimisation
    data, targets_all, order = split
    n = len(order)
    batches_per_epoch = math.ceil(n / settings.batch_size)
    # Running sums stay on the device: no host sync per batch.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    last_lr = settings.lr
    stats = pixel_stats(classifier)
    optimizer.zero_grad(set_to_none=True)
    for b in range(batches_per_epoch):
        idx = order[b * settings.batch_size : (b + 1) * settings.batch_size]
        group_start = (b // settings.grad_accumulation) * settings.grad_accumulation
        group_size = min(settings.grad_accumulation, batches_per_epoch - group_start)
        x = augment_batch(_model_input(data[idx], device), settings.augment, input_size, aug_gen)
        y = targets_all[idx].to(device, non_blocking=True)
        with autocast_for(device):
            logits = classifier(normalise(x, *stats))
        loss = F.cross_entropy(logits.float(), y)
        (loss / group_size).backward()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.argmax(dim=-1) == y).sum()
        if b - group_start + 1 == group_size:
            last_lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        bar.update(1)
    return {
        "train_loss": float(loss_sum.item()) / n,
        "train_accuracy": int(correct.item()) / n,
        "lr": last_lr,
    }


def format_metrics(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
