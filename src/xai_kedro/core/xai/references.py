"""Plain, slow references of the engine's results: eager attention, one step per forward.

Tests compare the engine against these; the naive GPU benchmark times them. Never used in the
pipeline.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch

from xai_kedro.core.data.preprocessing import to_model_input
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import pixel_stats
from xai_kedro.core.models.inference import (
    resolve_input_size,
)
from xai_kedro.core.xai.attention import patch_heatmap
from xai_kedro.core.xai.curves import separable_gaussian_blur
from xai_kedro.core.xai.settings import XAIConfig


def eager_copy(model: ViTClassifier) -> ViTClassifier:
    """A copy of the classifier whose backbone runs eager attention (it can return weights)."""
    eager = copy.deepcopy(model)
    if hasattr(eager.backbone, "set_attn_implementation"):
        eager.backbone.set_attn_implementation("eager")
    else:  # older transformers
        eager.backbone.config._attn_implementation = "eager"
    return eager


def is_eager(model: ViTClassifier) -> bool:
    return getattr(model.backbone.config, "_attn_implementation", None) == "eager"


def eager_last_layer_attention(model: ViTClassifier, pixel_values: torch.Tensor) -> torch.Tensor:
    """The notebook way: eager attention with `output_attentions=True`.

    Returns the last layer's CLS->patch heatmap [B, N] (mean over heads, renormalised). Slow; a
    reference for `attention.last_layer_cls_attention`, never used in the pipeline. A model that
    does not run eager attention already is copied first (see `eager_copy`).
    """
    backbone = (model if is_eager(model) else eager_copy(model)).backbone
    with torch.inference_mode():
        out = backbone(pixel_values=pixel_values, output_attentions=True)
    if not out.attentions or out.attentions[-1] is None:
        raise RuntimeError("the eager backbone returned no attention weights")
    last = out.attentions[-1].float()
    rows = last[:, :, 0] if model.family.has_cls else last.mean(dim=2)
    return patch_heatmap(rows, model.n_prefix)


def _reference_prob(
    model: ViTClassifier,
    pixel_values: torch.Tensor,
    kept: list[int],
    target: int,
    config: XAIConfig,
) -> float:
    """Target probability of one image with only the patches in `kept` present."""
    if config.perturbation == "token_drop":
        tokens = model.embed(pixel_values)
        p = model.n_prefix
        seq = torch.cat([tokens[:, :p], tokens[:, [p + i for i in kept]]], dim=1)
        logits = model.forward_tokens(seq)
    else:
        patch = model.patch_size
        grid = pixel_values.shape[-1] // patch
        if config.pixel_baseline == "mean":
            baseline = torch.zeros_like(pixel_values)
        else:
            baseline = separable_gaussian_blur(
                pixel_values, config.blur_sigma, config.blur_truncate
            )
        x = pixel_values.clone()
        for i in set(range(grid * grid)) - set(kept):
            r, c = divmod(i, grid)
            rows = slice(r * patch, (r + 1) * patch)
            cols = slice(c * patch, (c + 1) * patch)
            x[:, :, rows, cols] = baseline[:, :, rows, cols]
        logits = model(x)
    return float(torch.softmax(logits.float(), dim=-1)[0, target])


def reference_deletion_insertion(
    model: ViTClassifier,
    image: np.ndarray,
    label: int,
    heatmap: np.ndarray | Sequence[float] | torch.Tensor,
    config: XAIConfig | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """(deletion AUC, insertion AUC) of one uint8 image, one step per forward, fp32, no reuse.

    Both curves are the target probability at the true fraction n_k / N of patches removed or
    revealed; the step with no patch left scores the blurred image (`empty_input: blur`).
    """
    config = config or XAIConfig()
    device = torch.device(device)
    size = resolve_input_size(model, config.input_size)
    heat = np.asarray(torch.as_tensor(heatmap).float().cpu(), dtype=np.float32)
    order = np.argsort(-heat, kind="stable")
    n = len(order)
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(image))[None]
        x = to_model_input(x, size, device, *pixel_stats(model))
        probs = torch.softmax(model(x).float(), dim=-1)[0]
        target = int(label) if config.target == "label" else int(probs.argmax())
        blurred = separable_gaussian_blur(x, config.blur_sigma, config.blur_truncate)
        p_blurred = float(torch.softmax(model(blurred).float(), dim=-1)[0, target])

        def prob(kept: list[int]) -> float:
            if not kept and config.empty_input == "blur":
                return p_blurred
            return _reference_prob(model, x, kept, target, config)

        deletion, insertion, xs = [], [], []
        for k in range(config.steps + 1):
            n_k = round_half_up(k * n / config.steps)
            most_important = [int(i) for i in order[:n_k]]
            rest = sorted(set(range(n)) - set(most_important))
            deletion.append(prob(rest))
            insertion.append(prob(sorted(most_important)))
            xs.append(n_k / n)
    return float(np.trapezoid(deletion, xs)), float(np.trapezoid(insertion, xs))


def round_half_up(x: float) -> int:
    """Nearest integer, halves up (Python's round() would round halves to even)."""
    return math.floor(x + 0.5)
