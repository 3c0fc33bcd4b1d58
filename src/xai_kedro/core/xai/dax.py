"""DAX, amortised: a mask-generation network and a student trained jointly per adapter.

Bhattacharya et al. ("Gradient-free Post-hoc Explainability Using Distillation Aided Learnable
Approach") explain a black box they can only query: a mask-generation network reads the input
and writes a multiplier mask, a small non-linear student reads the masked input and learns to
reproduce the black box's outputs on locally perturbed inputs, and both are optimised jointly, so
the mask must keep what the student needs. `learned_mask` fits such a mask from scratch for every
image; here it is amortised over a dataset, as the issue asks:

* data: unlabeled images (the file the xai_silver pipeline writes beside the TVE explainer: a
  stable sample of Bronze's `pretrain` split, else `train`), embedded by the adapter's model;
* perturbations: Q random patch keep-masks z_q (each patch kept with `keep_prob`, seeded, shared
  by the images); the black box answers y_q = p_t(x with only z_q's patches), t the image's clean
  predicted class (token drop, as in `perturbation`: query access only, no gradient through it);
* mask network: `amortised.PatchNet` on the image's patch tokens, m = sigmoid(. ) [N];
* student: s(z, m, x, t) = MLP(sum_i z_i m_i f(x_i) / N + c_t), f a linear read of each patch
  token, c_t a learned class embedding, a sigmoid output;
* loss: mean (s - y)^2 + sparsity_weight * mean(m) (the weight ramped up over the first half
  of the epochs), Adam over the images for `epochs`.

Explaining an image is then one mask-network forward (plus the clean forward for the logits);
the training, once per adapter, is measured and reported by the leaderboard as amortised cost.
A trained mask network is cached per (model weights, settings, images) in the process and, given
`cache_dir`, on disk (under a file lock, so concurrent Spark workers train an adapter once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.data.preprocessing import normalise
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import pixel_stats
from xai_kedro.core.models.inference import images_x255, iter_batches
from xai_kedro.core.xai.amortised import (
    NetTraining,
    PatchNet,
    TrainingCost,
    register_training_cost,
    small_net_threads,
    state_fingerprint,
)
from xai_kedro.core.xai.attention import fp32
from xai_kedro.core.xai.explainers import normalised_heatmap, register_explainer
from xai_kedro.core.xai.perturbation import (
    DEFAULT_MAX_BATCH_TOKENS,
    clean_prediction,
    rise_masks,
    shared_mask_probabilities,
)


@dataclass(frozen=True)
class DAXSettings(NetTraining):
    """The training of one adapter's mask network (the `dax` explainer's settings but the
    paths): train_images, queries (keep-masks per image), keep_prob, sparsity_weight (see the
    module docstring); the network and the loop: `amortised.NetTraining`."""

    train_images: int = 256
    queries: int = 32
    keep_prob: float = 0.5
    sparsity_weight: float = 0.05

    def __post_init__(self) -> None:
        try:
            self.check_training()
        except ValueError as exc:
            raise ValueError(f"dax: {exc}") from None
        if self.train_images < 1 or self.queries < 1:
            raise ValueError("dax: train_images and queries must be >= 1")
        if not 0.0 < self.keep_prob < 1.0:
            raise ValueError(f"dax: keep_prob must be in (0, 1), got {self.keep_prob}")
        if self.sparsity_weight < 0:
            raise ValueError("dax: sparsity_weight must be >= 0")


class Student(nn.Module):
    """The distilled student: the masked patches' pooled features and the class -> p_t."""

    def __init__(self, dim: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.features = nn.Linear(dim, hidden)
        self.classes = nn.Embedding(classes, hidden)
        self.out = nn.Sequential(
            nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )

    def forward(
        self, patches: torch.Tensor, visible: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """patches [B, N, D] (standardised), visible [B, Q, N] (keep-mask x mask), target [B]
        -> [B, Q]."""
        pooled = torch.einsum("bqn,bnh->bqh", visible, self.features(patches.float()))
        pooled = pooled / patches.shape[1] ** 0.5 + self.classes(target)[:, None]
        return torch.sigmoid(self.out(pooled).squeeze(-1))


def mask_of(net: PatchNet, tokens: torch.Tensor, n_prefix: int) -> torch.Tensor:
    """The mask [B, N] in [0, 1] the network writes for each image."""
    with fp32(tokens.device):
        return torch.sigmoid(net(tokens[:, n_prefix:]).squeeze(-1))


def _queries(
    model: ViTClassifier, tokens: torch.Tensor, s: DAXSettings
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The perturbations keep [Q, N], the black box's answers [B, Q], the targets [B], classes."""
    logits, target, clean = clean_prediction(model, tokens)
    keep = rise_masks(
        s.queries, tokens.shape[1] - model.n_prefix, s.keep_prob, s.seed, tokens.device
    )
    answers = shared_mask_probabilities(model, tokens, keep, target, clean, s.max_batch_tokens)
    return keep, answers.T.float().clone(), target.clone(), int(logits.shape[1])


def fit_dax(
    model: ViTClassifier, tokens: torch.Tensor, settings: DAXSettings
) -> tuple[PatchNet, dict[str, Any]]:
    """Train the mask network and the student jointly on embedded images tokens [B, P + N, D]
    (query access to `model` only; seeded). Returns the mask network (eval, CPU) and a record
    with the measured seconds."""
    start, s, device = time.perf_counter(), settings, tokens.device
    with torch.inference_mode(False), torch.no_grad():
        tokens = tokens.float().clone()
        keep, answers, target, classes = _queries(model, tokens, s)
    generator = torch.Generator().manual_seed(s.seed + 1)
    with (
        seeded_rng(s.seed),
        torch.inference_mode(False),
        torch.enable_grad(),
        fp32(device),
        small_net_threads(device),
    ):
        patches, visible_keep = tokens[:, model.n_prefix :], keep.float()[None]
        net = s.patch_net(tokens.shape[2], 1).to(device)
        standard = (patches - net.fit_scale(patches).shift) / net.scale
        student = Student(tokens.shape[2], s.hidden, classes).to(device)
        optimiser = torch.optim.Adam([*net.parameters(), *student.parameters()], lr=s.lr)
        history = []
        for epoch in range(s.epochs):
            # the sparsity term ramps up over the first half: a mask emptied before the student
            # has learned what to keep gets no gradient back (sigmoid saturation)
            weight = s.sparsity_weight * min(1.0, 2.0 * (epoch + 1) / s.epochs)
            order, total = torch.randperm(len(tokens), generator=generator), 0.0
            for sl in iter_batches(len(tokens), s.batch_size):
                idx = order[sl].to(device)
                mask = torch.sigmoid(net(patches[idx]).squeeze(-1))
                fitted = student(standard[idx], visible_keep * mask[:, None, :], target[idx])
                fit = ((fitted - answers[idx]) ** 2).mean()
                loss = fit + weight * mask.mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(fit.detach()) * len(idx)
            history.append(total / len(tokens))
    record = {
        "seconds": time.perf_counter() - start,
        "images": len(tokens),
        "final_fit_mse": history[-1],
        "answer_variance": float(answers.var()),
        "settings": dataclasses.asdict(s),
    }
    return net.eval().requires_grad_(False).cpu(), record


def training_tokens(model: ViTClassifier, images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 images [B, H, W, 3] -> the model's embedded tokens at its own input size."""
    host = torch.from_numpy(np.array(images, dtype=np.uint8))
    with torch.no_grad():
        x = normalise(images_x255(host, model.image_size, device), *pixel_stats(model))
        return model.embed(x).float()


_TRAINED: dict[str, tuple[PatchNet, dict[str, Any]]] = {}
_KEEP_IN_MEMORY = 32


# model -> {(images, settings): key}: a model object is fingerprinted once, not per chunk.
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, stamp: tuple[int, int]) -> str:
    del stamp  # part of the cache key only
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _key(model: ViTClassifier, images: str, settings: DAXSettings) -> str:
    """sha256 of the model's weights, the settings and the images file's content."""
    keys = _KEYS.setdefault(model, {})
    if (images, settings) not in keys:
        file = Path(images)
        info = file.stat() if file.is_file() else None
        stamp = "" if info is None else _file_digest(images, (info.st_mtime_ns, info.st_size))
        payload = json.dumps(dataclasses.asdict(settings), sort_keys=True) + stamp
        keys[images, settings] = hashlib.sha256(
            (state_fingerprint(model) + payload).encode()
        ).hexdigest()
    return keys[images, settings]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _train_or_load(model: ViTClassifier, images: str, cache: Path | None, s: DAXSettings):
    if cache is not None and cache.exists():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        net = PatchNet(**stored["shape"])
        net.load_state_dict(stored["state"])
        return net.eval().requires_grad_(False), json.loads(stored["record"])
    if not images or not Path(images).is_file():
        raise ValueError(
            f"dax: no training images at {images!r}; the xai_silver pipeline's pretrain_tve "
            "node writes them and passes the path (setting `images`)"
        )
    device = next(model.parameters()).device
    host = np.load(images, mmap_mode="r")[: s.train_images]
    net, record = fit_dax(model, training_tokens(model, host, device), s)
    if cache is not None:
        part = cache.with_suffix(".part")
        torch.save(
            {"shape": net.shape, "state": net.state_dict(), "record": json.dumps(record)}, part
        )
        part.replace(cache)
    return net, record


def trained_dax(
    model: ViTClassifier, images: str, cache_dir: str, settings: DAXSettings
) -> tuple[PatchNet, dict[str, Any]]:
    """The mask network for this model (trained once per weights, settings and images)."""
    key = _key(model, images, settings)
    if key not in _TRAINED:
        cache = Path(cache_dir) / f"dax_{key[:24]}.pt" if cache_dir else None
        with _locked(cache) if cache is not None else contextlib.nullcontext():
            _TRAINED[key] = _train_or_load(model, images, cache, settings)
        while len(_TRAINED) > _KEEP_IN_MEMORY:
            _TRAINED.pop(next(iter(_TRAINED)))
    return _TRAINED[key]


def _split(settings: dict[str, Any]) -> tuple[str, str, DAXSettings]:
    rest = dict(settings)
    return str(rest.pop("images", "")), str(rest.pop("cache_dir", "")), DAXSettings(**rest)


@register_explainer("dax")
def dax_explainer(
    model: ViTClassifier,
    tokens: torch.Tensor,
    *,
    images: str = "",
    cache_dir: str = "",
    train_images: int = 256,
    queries: int = 32,
    keep_prob: float = 0.5,
    epochs: int = 30,
    batch_size: int = 32,
    lr: float = 3e-3,
    hidden: int = 32,
    layers: int = 1,
    heads: int = 4,
    sparsity_weight: float = 0.05,
    seed: int = 0,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the amortised mask: one mask-network forward per image."""
    path, cache_dir, settings = _split(
        {k: v for k, v in locals().items() if k not in ("model", "tokens")}
    )
    net, _ = trained_dax(model, path, cache_dir, settings)
    logits = model.forward_tokens(tokens)
    mask = mask_of(net.to(tokens.device), tokens, model.n_prefix)
    return logits, normalised_heatmap(mask)


@register_training_cost(dax_explainer)
def _dax_cost(model: ViTClassifier, **settings: Any) -> TrainingCost:
    """Training seconds of this adapter's mask network (as measured when it was trained)."""
    path, cache_dir, dax = _split(settings)
    _, record = trained_dax(model, path, cache_dir, dax)
    return TrainingCost(per_adapter=float(record["seconds"]))
