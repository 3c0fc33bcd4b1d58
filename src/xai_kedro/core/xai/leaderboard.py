"""Per-image faithfulness of several explainers on the same model: the rows of the leaderboard.

Each chunk of images is embedded once; every configured explainer then explains it (timed, its
clean forward included), and its heatmap is scored with the XAI stage's own deletion and
insertion curves (`curves`, so an explainer's numbers equal `silver_xai`'s for the same
settings) and with Fidelity+/- against sparsity (`fidelity`). The object share is added where
an image has a ground-truth mask. An amortised explainer (`tve`, `dax`) is trained or loaded
before its timing starts; its training seconds (per backbone, per adapter) are their own
columns, so the Gold table can amortise them over any number of images and adapters.
`core.meta.explainers.faithfulness` aggregates the rows into the Gold table
`explainer_faithfulness`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from xai_kedro.core.common.columns import IMAGE_ADAPTER_KEYS, Column, names
from xai_kedro.core.common.device import autocast_for
from xai_kedro.core.common.settings import Settings
from xai_kedro.core.data.preprocessing import normalise
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import pixel_stats
from xai_kedro.core.models.inference import (
    as_uint8_images,
    images_x255,
    iter_batches,
    resolve_input_size,
)
from xai_kedro.core.xai.amortised import training_cost
from xai_kedro.core.xai.columns import EXPLAINER_KEY, TARGET_COLUMN
from xai_kedro.core.xai.curves import ExplainedChunk, _ChunkScorer, _curves, _target_logprob
from xai_kedro.core.xai.explainers import Explainer, configured_explainers
from xai_kedro.core.xai.fidelity import DEFAULT_SPARSITIES, check_sparsities, fidelity_areas
from xai_kedro.core.xai.fidelity import fidelity_curves as _fidelity_curves
from xai_kedro.core.xai.metrics import curve_area, object_attention_share
from xai_kedro.core.xai.settings import XAIConfig

# The per-image table, declared once: keys (image, adapter, explainer) and the scores.
EXPLAINER_SCORES: tuple[Column, ...] = (
    *IMAGE_ADAPTER_KEYS,
    EXPLAINER_KEY,
    TARGET_COLUMN,
    Column("deletion_auc", "double", "area under the deletion curve (lower = faithful)", "xai"),
    Column("insertion_auc", "double", "area under the insertion curve (higher = faithful)", "xai"),
    Column(
        "fidelity_plus_auc", "double", "Fidelity+ against sparsity, area (higher = faithful)", "xai"
    ),
    Column(
        "fidelity_minus_auc", "double", "Fidelity- against sparsity, area (lower = faithful)", "xai"
    ),
    Column(
        "object_attention_share",
        "double",
        "share of the heatmap on the object mask (needs ground-truth masks)",
        role="analysis",
        nullable=True,
        label_free=False,
    ),
    Column(
        "seconds_per_image",
        "double",
        "explainer time per image, its clean forward included (its training excluded)",
        "payload",
    ),
    Column(
        "backbone_training_seconds",
        "double",
        "the explainer's training once per backbone, shared by every adapter (TVE; else 0)",
        "payload",
    ),
    Column(
        "adapter_training_seconds",
        "double",
        "the explainer's training for this adapter (DAX; else 0)",
        "payload",
    ),
)
EXPLAINER_SCORE_KEYS = names(EXPLAINER_SCORES[:3])
# What `score_explainers` returns besides `row`: every column but image_id / adapter_id.
SCORE_COLUMNS = names(EXPLAINER_SCORES[2:])


@dataclass(frozen=True)
class LeaderboardConfig(Settings):
    """Settings of the explainer leaderboard (parameters `xai_silver.leaderboard`).

    explainers: {name: settings or None}, the explainers to compare (registry names).
    sparsities: Fidelity+/- levels, fractions of the patches, strictly increasing.
    images_per_adapter: test images scored per adapter (a stable hash sample; None = all).
    adapters: adapter ids to score (None = every adapter of the zoo).
    max_adapters: at most this many of them, the first by adapter id (None = no limit).
    n_boot, alpha, seed: the bootstrap intervals of the Gold table.
    reference: an explainer every other is compared with, paired per image (the Gold table's
        `<score>_gap` columns, e.g. how far TVE's transfer falls behind occlusion per adapter);
        None, or an explainer not compared = no comparison (NaN gaps).
    amortise_images: the images each adapter explains, over which the Gold table spreads an
        explainer's training (its cost per (image, adapter)); None = the images scored.
    """

    PATH = "xai_silver.leaderboard"

    explainers: Mapping[str, Mapping | None] = field(
        default_factory=lambda: {"attention": None, "rollout": None}
    )
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    images_per_adapter: int | None = None
    adapters: tuple[str, ...] | None = None
    max_adapters: int | None = None
    n_boot: int = 1000
    alpha: float = 0.05
    seed: int = 0
    reference: str | None = None
    amortise_images: int | None = None

    def __post_init__(self) -> None:
        configured_explainers(self.explainers)  # unknown names or settings fail here
        if self.amortise_images is not None and self.amortise_images < 1:
            raise ValueError(
                f"leaderboard.amortise_images must be >= 1 or null, got {self.amortise_images}"
            )
        object.__setattr__(self, "sparsities", check_sparsities(self.sparsities))
        if self.images_per_adapter is not None and self.images_per_adapter < 1:
            raise ValueError(
                f"leaderboard.images_per_adapter must be >= 1 or null, got {self.images_per_adapter}"
            )
        if self.adapters is not None:
            object.__setattr__(self, "adapters", tuple(self.adapters))
        if self.max_adapters is not None and self.max_adapters < 1:
            raise ValueError(
                f"leaderboard.max_adapters must be >= 1 or null, got {self.max_adapters}"
            )
        if self.n_boot < 1 or not 0 < self.alpha < 1:
            raise ValueError("leaderboard.n_boot must be >= 1 and leaderboard.alpha in (0, 1)")

    def select_adapters(self, zoo_ids: Sequence[str]) -> list[str]:
        """The zoo members the leaderboard scores; a listed id missing from the zoo is an error."""
        available = sorted(set(zoo_ids))
        chosen = available if self.adapters is None else sorted(set(self.adapters))
        missing = sorted(set(chosen) - set(available))
        if missing:
            raise ValueError(
                f"leaderboard.adapters {missing} are not in the adapter zoo {available}"
            )
        return chosen if self.max_adapters is None else chosen[: self.max_adapters]


def sample_image_ids(image_ids: Sequence[str], count: int | None, seed: int = 0) -> list[str]:
    """A stable sample of `count` ids (all when None): the lowest sha256("seed:image_id"), so the
    same images are drawn on every run and for every adapter, whatever the input order."""
    ids = sorted(set(image_ids))
    if count is None or count >= len(ids):
        return ids
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return sorted(ranked[:count])


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _object_shares(heatmap: torch.Tensor, masks: list | None, grid: int) -> np.ndarray:
    out = np.full(heatmap.shape[0], np.nan)
    present = [] if masks is None else [i for i, m in enumerate(masks) if m is not None]
    if present:
        stacked = torch.stack([torch.as_tensor(np.array(masks[i])) for i in present])
        out[present] = object_attention_share(heatmap[present].cpu(), stacked, grid).numpy()
    return out


def _score_chunk(
    model: ViTClassifier,
    host: torch.Tensor,
    masks: list | None,
    explainers: Mapping[str, Explainer],
    config: XAIConfig,
    sparsities: Sequence[float],
    device: torch.device,
) -> list[pd.DataFrame]:
    size = resolve_input_size(model, config.input_size)
    scorer = _ChunkScorer(model, config, device)
    parts = []
    with torch.inference_mode():
        pixel_values = normalise(images_x255(host, size, device), *pixel_stats(model))
        with autocast_for(device):
            tokens = model.embed(pixel_values)
        for name, explainer in explainers.items():
            cost = training_cost(explainer, model)  # trains or loads it, outside the timing
            _synchronise(device)
            start = time.perf_counter()
            with autocast_for(device):
                logits, heatmap = explainer(model, tokens)
            _synchronise(device)
            seconds = time.perf_counter() - start
            logits, heatmap = logits.float(), heatmap.float()
            target = logits.argmax(dim=1)  # the class the explainers explain
            lp_clean = _target_logprob(logits, target)
            chunk = ExplainedChunk(pixel_values, tokens, heatmap, target, lp_clean)
            curves = _curves(scorer, chunk)
            fid_plus, fid_minus = fidelity_areas(_fidelity_curves(scorer, chunk, sparsities))
            parts.append(
                pd.DataFrame(
                    {
                        "explainer": name,
                        "target_class": target.cpu().numpy().astype(np.int64),
                        "deletion_auc": curve_area(curves.deletion, curves.fractions).cpu().numpy(),
                        "insertion_auc": curve_area(curves.insertion, curves.fractions)
                        .cpu()
                        .numpy(),
                        "fidelity_plus_auc": fid_plus.cpu().numpy(),
                        "fidelity_minus_auc": fid_minus.cpu().numpy(),
                        "object_attention_share": _object_shares(
                            heatmap, masks, size // model.patch_size
                        ),
                        "seconds_per_image": seconds / host.shape[0],
                        "backbone_training_seconds": cost.per_backbone,
                        "adapter_training_seconds": cost.per_adapter,
                        "_row": np.arange(host.shape[0]),
                    }
                )
            )
    return parts


def score_explainers(
    model: ViTClassifier,
    images: np.ndarray | torch.Tensor,
    masks: Sequence | None,
    explainers: Mapping[str, Explainer],
    config: XAIConfig,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    device: torch.device | str = "cpu",
) -> pd.DataFrame:
    """One row per (image, explainer), images in input order within each explainer's block.

    Returns SCORE_COLUMNS plus `row`, the image's position in `images`. `masks` is None or a
    per-image sequence whose entries may be None (NaN object share there). The curves follow the
    clean predicted class, the class every class-specific explainer explains, so `config.target`
    must be "predicted" (no label is needed).
    """
    device = torch.device(device)
    if model.training:
        raise ValueError("score_explainers needs the model in eval mode (call model.eval())")
    if config.target != "predicted":
        raise ValueError(
            "the leaderboard follows the class the explainers explain: the XAI config's target "
            f"must be 'predicted', got {config.target!r}"
        )
    if not explainers:
        raise ValueError("score_explainers needs at least one explainer")
    host = as_uint8_images(images)
    mask_rows = None if masks is None else list(masks)
    if mask_rows is not None and len(mask_rows) != host.shape[0]:
        raise ValueError(f"{len(mask_rows)} masks for {host.shape[0]} images")
    sparsities = check_sparsities(sparsities)
    parts = []
    for sl in iter_batches(host.shape[0], config.batch_size):
        chunk_masks = None if mask_rows is None else mask_rows[sl]
        for part in _score_chunk(
            model, host[sl], chunk_masks, explainers, config, sparsities, device
        ):
            parts.append(part.assign(_row=part["_row"] + sl.start))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*SCORE_COLUMNS, "row"]})
    out = pd.concat(parts, ignore_index=True).rename(columns={"_row": "row"})
    order = {name: i for i, name in enumerate(explainers)}
    out = out.sort_values(
        ["explainer", "row"], key=lambda c: c.map(order) if c.name == "explainer" else c
    )
    return out.reset_index(drop=True)[[*SCORE_COLUMNS, "row"]]
