"""What the amortised explainers (`tve`, `dax`) share: a small patch network, masked-input
embeddings by token drop, model fingerprints and the training cost the leaderboard amortises.

An amortised explainer trains once (per backbone: TVE; per adapter: DAX) and then explains an
image with one forward of its own network. Its training time is not part of the timed
explanation: the leaderboard asks `training_cost(explainer, model)` first (which trains or loads
what the explainer needs) and reports the seconds beside the per-image time, so the cost per
(image, adapter) can be stated at any zoo size.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.inference import iter_batches


@dataclass(frozen=True)
class NetTraining:
    """How an amortised explainer's network is shaped and trained (shared by TVE and DAX).

    epochs, batch_size, lr: Adam over the images; hidden, layers, heads: the `PatchNet` (width,
    attention blocks, heads; layers 0 = each patch alone); seed: masks, initialisation, order;
    max_batch_tokens: token budget of one black-box query forward.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    hidden: int = 32
    layers: int = 1
    heads: int = 4
    seed: int = 0
    max_batch_tokens: int = 262_144

    def check_training(self) -> None:
        """Raise ValueError on a loop or shape that cannot train."""
        for name in ("epochs", "batch_size", "hidden", "heads", "max_batch_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0 (0: each patch alone), got {self.layers}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def patch_net(self, dim: int, out: int) -> PatchNet:
        """A fresh network of this shape (initialised from the current torch RNG)."""
        return PatchNet(dim, out, self.hidden, self.layers, self.heads)


class _Block(nn.Module):
    """Pre-norm self-attention + MLP over the patch sequence (no dropout: deterministic)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"hidden size {width} is not a multiple of {heads} heads")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        x = x + self.out(context)
        return x + self.mlp(self.norm2(x))


class PatchNet(nn.Module):
    """Patch tokens [B, N, D] -> per-patch outputs [B, N, out]: a projection to `hidden`,
    `layers` attention blocks (each patch's output may depend on the others) and a linear read."""

    def __init__(self, dim: int, out: int, hidden: int, layers: int, heads: int) -> None:
        super().__init__()
        self.shape = {"dim": dim, "out": out, "hidden": hidden, "layers": layers, "heads": heads}
        # per-feature standardisation with the training tokens' statistics (`fit_scale`): a
        # LayerNorm here would mix a token's features and blur a feature that alone matters
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.inp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU())
        self.blocks = nn.ModuleList(_Block(hidden, heads) for _ in range(layers))
        self.read = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out))
        nn.init.zeros_(self.read[1].weight)  # starts from the zero attribution / an even mask
        nn.init.zeros_(self.read[1].bias)

    def fit_scale(self, patches: torch.Tensor) -> PatchNet:
        """Standardise each input feature with the mean and std of these patches [B, N, D]."""
        flat = patches.detach().float().reshape(-1, patches.shape[-1])
        self.shift.copy_(flat.mean(dim=0))
        self.scale.copy_(flat.std(dim=0).clamp_min(1e-6) if len(flat) > 1 else self.scale)
        return self

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.inp((patches.float() - self.shift) / self.scale)
        for block in self.blocks:
            x = block(x)
        return self.read(x)


@contextlib.contextmanager
def small_net_threads(device: torch.device) -> Iterator[None]:
    """One intra-op thread while a small explainer network trains on the CPU: its operations
    are too small to split, and on a loaded 2-core machine two threads made a step 40x slower
    (7 ms against 340 ms, measured). The caller's thread count is restored after."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def kept_embeddings(
    model: ViTClassifier, tokens: torch.Tensor, keep: torch.Tensor, max_batch_tokens: int
) -> torch.Tensor:
    """The pooled embedding (what the head reads) of each image with only its kept patches.

    tokens [B, P + N, D]; keep [B, N] bool, one keep-mask per row (any count; prefix tokens
    always stay, a removed patch leaves the sequence as in `perturbation`). Returns [B, E] float32.
    A family without prefix tokens (SigLIP) shown no patch sees nothing: its embedding is zero.
    """
    p = model.n_prefix
    counts = keep.sum(dim=1)
    out, empty = None, []
    for count in torch.unique(counts).tolist():
        rows = torch.nonzero(counts == count)[:, 0]
        if p + count == 0:
            empty.append(rows)
            continue
        kept = torch.nonzero(keep[rows])[:, 1].view(len(rows), count)
        per_forward = max(1, max_batch_tokens // (p + count))
        for sl in iter_batches(len(rows), per_forward):
            r = rows[sl]
            seq = torch.cat([tokens[r, :p], tokens[r[:, None], p + kept[sl]]], dim=1)
            pooled = model.pool(model.encode(seq)).float()
            if out is None:
                out = pooled.new_empty(keep.shape[0], pooled.shape[1])
            out[r] = pooled
    if out is None:  # every row empty: the width from one token's embedding
        width = model.pool(model.encode(tokens[:1, :1])).shape[1]
        out = tokens.new_zeros(keep.shape[0], width, dtype=torch.float32)
    for rows in empty:
        out[rows] = 0.0
    return out


def state_fingerprint(module: nn.Module) -> str:
    """sha256 of a module's state (names, shapes and float32 values): the same weights give the
    same fingerprint on every device and in every copy."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(value.shape)}".encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainingCost:
    """Seconds an explainer spent training: once per backbone (shared by every adapter) and
    once per adapter. Zero for explainers that do not train."""

    per_backbone: float = 0.0
    per_adapter: float = 0.0


_COSTS: dict[Callable, Callable[..., TrainingCost]] = {}


def register_training_cost(
    explainer: Callable,
) -> Callable[[Callable[..., TrainingCost]], Callable[..., TrainingCost]]:
    """Declare `cost(model, **settings) -> TrainingCost` for a registered explainer function;
    it prepares (trains or loads) what the explainer needs and returns the measured seconds."""

    def decorate(cost: Callable[..., TrainingCost]) -> Callable[..., TrainingCost]:
        _COSTS[explainer] = cost
        return cost

    return decorate


def training_cost(explainer: Callable, model: ViTClassifier) -> TrainingCost:
    """The training cost of a (possibly settings-bound) explainer on `model` (zero when it does
    not train); preparing it here keeps the training out of the timed explanation."""
    fn = getattr(explainer, "func", explainer)
    settings: dict[str, Any] = dict(getattr(explainer, "keywords", None) or {})
    cost = _COSTS.get(fn)
    return TrainingCost() if cost is None else cost(model, **settings)
