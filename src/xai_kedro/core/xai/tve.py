"""TVE: a transferable explainer pre-trained once per backbone, transferred to any adapter's head.

Wang et al. ("TVE: Learning Meta-attribution for Transferable Vision Explainer") pre-train an
explainer on unlabeled images to predict a *meta-attribution*: for every patch i and every
dimension d of the backbone's embedding, the contribution phi[i, d] of the patch to that
dimension. It is learned from masked-input queries, and an explanation for a downstream task is
the task's classifier applied to it, with no task data. Here:

* embedding e(x): what the head reads, `ViTClassifier.pool` of the frozen backbone ([CLS ; mean
  patch], E = 2 D for DINOv2);
* queries: per image, `queries / 2` keep-masks z and their complements 1 - z (the region kept and
  the region removed), the count of kept patches drawn from the Shapley kernel
  (N - 1) / (k (N - k)), plus the full image; removed patches leave the token sequence as in
  `perturbation`; v(z) = e(x_z) - e(x_empty), the empty input being the prefix tokens alone;
* objective (Shapley-style, additive over patches): mean over images and queries of
  || sum_{i kept by z} phi[i] - v(z) ||^2, scaled by the variance of v; the full-image query makes
  sum_i phi[i] = e(x) - e(empty) (efficiency), and each paired query makes the kept region's
  and the removed region's attributions explain their own embeddings;
* explainer network: a small attention network (`amortised.PatchNet`) reading the patch tokens
  the model embeds (the image) and writing phi [N, E]; Adam, a cosine schedule, seeded.

Transfer: for a model with linear head W [C, E] and its predicted class t, the patch scores are
phi @ W[t], i.e. each patch's contribution to the logit of t (sum over patches: the logit of t on
the image minus on the empty input, when phi is exact), normalised like every heatmap. The
transfer is exact for an adapter whose encoder is the frozen backbone (the linear probe); a LoRA
or DoRA adapter changes the encoder, so TVE explains it with the frozen backbone's
meta-attribution: the leaderboard measures how faithful that stays. Cost: one clean forward, one
explainer-network forward and a product with the head, plus the pre-training once per backbone.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.common.settings import Settings
from xai_kedro.core.data.preprocessing import normalise
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import pixel_stats
from xai_kedro.core.models.inference import images_x255, iter_batches
from xai_kedro.core.xai.amortised import (
    NetTraining,
    PatchNet,
    TrainingCost,
    kept_embeddings,
    register_training_cost,
    small_net_threads,
)
from xai_kedro.core.xai.attention import fp32
from xai_kedro.core.xai.explainers import normalised_heatmap, register_explainer

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "tve.pt"
RECORD_FILE = "tve.json"


@dataclass(frozen=True)
class TVESettings(Settings, NetTraining):
    """TVE pre-training (parameters `xai_silver.tve`): once per backbone, reused while the
    backbone, these settings and the images are unchanged.

    split: the unlabeled images ("auto": Bronze's `pretrain` split where there is one, else
        `train`; labels are never read).
    images: at most this many of them (a stable hash sample).
    queries: masked-input queries per image (pairs z, 1 - z; even), plus the full image.
    weight_decay: AdamW's, with a cosine schedule over the epochs.
    The network and the loop: `amortised.NetTraining`.
    """

    PATH = "xai_silver.tve"

    split: str = "auto"
    images: int = 512
    queries: int = 16
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        self.check_training()
        if self.queries < 2 or self.queries % 2:
            raise ValueError(f"queries must be an even number >= 2, got {self.queries}")
        if self.images < 1 or self.weight_decay < 0:
            raise ValueError("images must be >= 1 and weight_decay >= 0")


def shapley_masks(
    images: int, queries: int, n_patches: int, generator: torch.Generator
) -> torch.Tensor:
    """[images, queries + 1, N] bool: `queries / 2` Shapley-kernel keep-masks, each followed by
    its complement, then the full image."""
    pairs = queries // 2
    k = torch.arange(1, n_patches, dtype=torch.float64)
    kernel = (n_patches - 1) / (k * (n_patches - k))
    counts = torch.multinomial(kernel, images * pairs, replacement=True, generator=generator) + 1
    order = torch.rand(images * pairs, n_patches, generator=generator).argsort(dim=1)
    keep = order < counts[:, None]
    paired = torch.stack([keep, ~keep], dim=1).view(images, queries, n_patches)
    full = torch.ones(images, 1, n_patches, dtype=torch.bool)
    return torch.cat([paired, full], dim=1)


def masked_targets(
    backbone: ViTClassifier, tokens: torch.Tensor, keep: torch.Tensor, max_batch_tokens: int
) -> torch.Tensor:
    """v(z) = e(x_z) - e(x_empty) [B, Q, E] for tokens [B, P + N, D] and masks keep [B, Q, N]."""
    b, q, n = keep.shape
    rows = torch.arange(b, device=tokens.device).repeat_interleave(q)
    empty = torch.zeros(1, n, dtype=torch.bool, device=tokens.device)
    base = kept_embeddings(backbone, tokens[:1], empty, max_batch_tokens)
    out = []
    for sl in iter_batches(b * q, max(1, max_batch_tokens // tokens.shape[1])):
        flat = keep.reshape(b * q, n)[sl].to(tokens.device)
        out.append(kept_embeddings(backbone, tokens[rows[sl]], flat, max_batch_tokens) - base)
    return torch.cat(out).view(b, q, -1)


def meta_attribution(net: PatchNet, tokens: torch.Tensor, n_prefix: int) -> torch.Tensor:
    """phi [B, N, E]: each patch's contribution to each embedding dimension."""
    with fp32(tokens.device):
        return net(tokens[:, n_prefix:])


def transfer(phi: torch.Tensor, head_weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Patch scores [B, N] = phi @ W[t]: the head row of each image's class applied to phi."""
    return torch.einsum("bne,be->bn", phi.float(), head_weight.float()[target])


def _fit(
    net: PatchNet, patches: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor, s: TVESettings
) -> list[float]:
    """Adam on the variance-scaled squared error of the additive model; per-epoch losses."""
    scale = targets.var().clamp_min(1e-12)
    steps = s.epochs * math.ceil(len(patches) / s.batch_size)
    optimiser = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    generator = torch.Generator().manual_seed(s.seed + 1)
    history = []
    for _ in range(s.epochs):
        order, total = torch.randperm(len(patches), generator=generator), 0.0
        for sl in iter_batches(len(patches), s.batch_size):
            idx = order[sl].to(patches.device)
            pred = torch.einsum("bqn,bne->bqe", keep[idx].float(), net(patches[idx]))
            loss = ((pred - targets[idx]) ** 2).mean() / scale
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / len(patches))
    return history


def explained_share(
    net: PatchNet, tokens: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor, n_prefix: int
) -> float:
    """1 - squared error / variance of the additive model on these queries (R^2)."""
    with torch.no_grad():
        phi = meta_attribution(net, tokens, n_prefix)
        pred = torch.einsum("bqn,bne->bqe", keep.float(), phi)
        return float(1.0 - ((pred - targets) ** 2).mean() / targets.var().clamp_min(1e-12))


def pretrain_tve(
    backbone: ViTClassifier, tokens: torch.Tensor, settings: TVESettings
) -> tuple[PatchNet, dict[str, Any]]:
    """Pre-train the explainer on embedded unlabeled images tokens [B, P + N, D] (seeded).

    `backbone` is the frozen backbone wrapped in a `ViTClassifier` (its head is not used). One in
    eight images is held out to report how much of the masked embeddings the additive
    meta-attribution explains (`held_out_r2`). Returns the network (eval, CPU) and its record.
    """
    start = time.perf_counter()
    p, device = backbone.n_prefix, tokens.device
    generator = torch.Generator().manual_seed(settings.seed)
    keep = shapley_masks(len(tokens), settings.queries, tokens.shape[1] - p, generator).to(device)
    with torch.inference_mode(False), torch.no_grad(), fp32(device):
        tokens = tokens.float().clone()
        targets = masked_targets(backbone, tokens, keep, settings.max_batch_tokens).clone()
    query_seconds = time.perf_counter() - start
    held = torch.arange(len(tokens), device=device) % 8 == 7
    fit = ~held if bool(held.any()) and bool((~held).sum() > 1) else torch.ones_like(held)
    with (
        seeded_rng(settings.seed),
        torch.inference_mode(False),
        torch.enable_grad(),
        fp32(device),
        small_net_threads(device),
    ):
        net = settings.patch_net(tokens.shape[2], targets.shape[2]).to(device)
        patches = tokens[fit][:, p:]
        history = _fit(net.fit_scale(patches), patches, keep[fit], targets[fit], settings)
        net.eval()
        r2 = (
            explained_share(net, tokens[held], keep[held], targets[held], p) if held.any() else None
        )
    record = {
        "seconds": time.perf_counter() - start,
        "query_seconds": query_seconds,
        "images": len(tokens),
        "final_loss": history[-1],
        "held_out_r2": r2,
        "settings": dataclasses.asdict(settings),
    }
    return net.cpu(), record


def save_tve(net: PatchNet, record: dict[str, Any], directory: str | Path) -> Path:
    """Write the network and its record (the record last: it marks the directory complete)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({"shape": net.shape, "state": net.state_dict()}, directory / WEIGHTS_FILE)
    (directory / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return directory


def pretrained_record(
    directory: str | Path, fingerprint: str, train: Callable[[], tuple[PatchNet, dict[str, Any]]]
) -> dict[str, Any]:
    """The record of the explainer in `directory`, pre-trained with `train` unless one with the
    same fingerprint is already there (its measured seconds are kept: the cost it had)."""
    marker = Path(directory) / RECORD_FILE
    if marker.exists() and (Path(directory) / WEIGHTS_FILE).exists():
        record = json.loads(marker.read_text())
        if record.get("fingerprint") == fingerprint:
            logger.info("Reusing the TVE explainer in %s (fingerprint %s)", directory, fingerprint)
            return record
    net, record = train()
    record = {**record, "fingerprint": fingerprint}
    marker.unlink(missing_ok=True)
    save_tve(net, record, directory)
    logger.info(
        "TVE pre-trained in %.1f s (held-out R^2 %s)", record["seconds"], record["held_out_r2"]
    )
    return record


IMAGES_FILE = "images.npy"


def training_images(images: np.ndarray, input_size: int) -> np.ndarray:
    """uint8 [B, H, W, 3] at storage size -> uint8 [B, S, S, 3] at the model's input size."""
    x255 = images_x255(
        torch.from_numpy(np.array(images, dtype=np.uint8)), input_size, torch.device("cpu")
    )
    return x255.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def prepare_learned_explainers(
    directory: str | Path,
    backbone: torch.nn.Module,
    images: np.ndarray,
    key: str,
    settings: TVESettings,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The unlabeled images (DAX trains on them) and the TVE explainer, in `directory`.

    `images` uint8 [B, S, S, 3] at the input size; `key` identifies the backbone and the images
    (the caller hashes them). Both are rewritten only when the fingerprint (key + settings)
    changes. Returns the explainers' artifacts (paths, fingerprint, pre-training record)."""
    directory, device = Path(directory), torch.device(device)
    fingerprint = hashlib.sha256(
        json.dumps({"key": key, "settings": dataclasses.asdict(settings)}, sort_keys=True).encode()
    ).hexdigest()[:16]
    directory.mkdir(parents=True, exist_ok=True)
    stored = directory / IMAGES_FILE
    if not stored.exists() or not np.array_equal(np.load(stored, mmap_mode="r"), images):
        np.save(stored, images)

    def train() -> tuple[PatchNet, dict[str, Any]]:
        with seeded_rng(0):  # the unused head's init must not move the caller's RNG
            model = ViTClassifier(backbone, 1).to(device).eval()
        x = normalise(
            images_x255(torch.from_numpy(images), images.shape[1], device), *pixel_stats(model)
        )
        with torch.no_grad():
            tokens = model.embed(x).float()
        return pretrain_tve(model, tokens, settings)

    record = pretrained_record(directory / "tve", fingerprint, train)
    return {
        "tve": str(directory / "tve"),
        "images": str(stored),
        "dax_cache": str(directory / "dax"),
        "fingerprint": fingerprint,
        "pretrain_seconds": record["seconds"],
        "query_seconds": record.get("query_seconds"),
        "held_out_r2": record.get("held_out_r2"),
        "pretrain_images": len(images),
    }


def with_artifacts(block: Mapping[str, Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    """An `explainers` block {name: settings} with the artifacts' paths filled in for `tve`
    (`weights`) and `dax` (`images`, `cache_dir`), resolved to absolute paths for the workers;
    settings stated in the block win."""
    if not artifacts.get("tve"):
        return dict(block)
    paths = {
        "tve": {"weights": artifacts["tve"]},
        "dax": {"images": artifacts["images"], "cache_dir": artifacts["dax_cache"]},
    }
    out = {}
    for name, settings in block.items():
        filled = {k: str(Path(v).resolve()) for k, v in paths.get(name, {}).items()}
        out[name] = {**filled, **dict(settings or {})}
    return out


@functools.lru_cache(maxsize=8)
def _load(directory: str, stamp: int, device: str) -> tuple[PatchNet, dict[str, Any]]:
    del stamp  # part of the cache key only: a rewritten file is read again
    stored = torch.load(Path(directory) / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net = PatchNet(**stored["shape"])
    net.load_state_dict(stored["state"])
    record = json.loads((Path(directory) / RECORD_FILE).read_text())
    return net.eval().requires_grad_(False).to(device), record


def load_tve(directory: str | Path, device: torch.device | str = "cpu") -> tuple[PatchNet, dict]:
    """The pre-trained network (eval, frozen, on `device`) and its record, cached per process."""
    if not str(directory):
        raise ValueError(
            "tve: no pre-trained explainer (setting `weights` is empty); the xai_silver "
            "pipeline's pretrain_tve node pre-trains one and passes its directory"
        )
    path = Path(directory) / WEIGHTS_FILE
    if not path.exists():
        raise ValueError(f"tve: no pre-trained explainer at {path}")
    return _load(str(directory), path.stat().st_mtime_ns, str(torch.device(device)))


@register_explainer("tve")
def tve_explainer(
    model: ViTClassifier,
    tokens: torch.Tensor,
    *,
    weights: str = "",
    max_batch_images: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the transferred meta-attribution phi @ W[t] of the predicted class t."""
    net, _ = load_tve(weights, tokens.device)
    head = model.head.weight
    if net.shape["dim"] != tokens.shape[2] or net.shape["out"] != head.shape[1]:
        raise ValueError(
            f"tve: the explainer in {weights} reads width {net.shape['dim']} and writes "
            f"{net.shape['out']} dims; this model has width {tokens.shape[2]} and a head on "
            f"{head.shape[1]}: pre-train it for this backbone"
        )
    logits = model.forward_tokens(tokens)
    target = logits.argmax(dim=1)
    scores = torch.cat(
        [
            transfer(meta_attribution(net, tokens[sl], model.n_prefix), head, target[sl])
            for sl in iter_batches(tokens.shape[0], max_batch_images)
        ]
    )
    return logits, normalised_heatmap(scores)


@register_training_cost(tve_explainer)
def _tve_cost(model: ViTClassifier, *, weights: str = "", **_: Any) -> TrainingCost:
    """Pre-training seconds, once per backbone (shared by every adapter)."""
    _, record = load_tve(weights)
    return TrainingCost(per_backbone=float(record["seconds"]))
