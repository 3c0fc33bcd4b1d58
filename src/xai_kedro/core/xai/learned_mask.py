"""A learned-mask explainer from query access only, in the spirit of DAX.

Bhattacharya et al. (2023, "Gradient-free Post-hoc Explainability Using Distillation Aided
Learnable Approach") fit a mask-generation network jointly with a small non-linear student that
imitates the black box on locally perturbed inputs; the mask multiplies the student's input, so
it must keep what the student needs to reproduce the black box's answers. Here, per image and in
token-drop form:

* queries: Q random patch keep-masks z_q (the RISE masks, shared by every image) and the model's
  target probability y_q = p_t(x with only z_q's patches), batched by kept count;
* mask: m = sigmoid(theta), one logit per patch, fitted per image;
* student: a one-hidden-layer MLP per image, s(z) = sigmoid(v . relu(W (z * m) + b) + c);
* loss: mean_q (s(z_q) - y_q)^2 + sparsity_weight * mean(m), minimised with Adam.

The heatmap is m, renormalised. The model is only queried (no gradient through it); autograd
runs on the small per-image parameters. Every image starts from the same seeded initialisation
and its loss involves only its own parameters, so a chunk's result does not depend on its
company. This is a light variant, not a reproduction: DAX's mask network reads the image and is
trained over many perturbations with its own architecture and schedule.
"""

from __future__ import annotations

import torch

from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.attention import fp32
from xai_kedro.core.xai.explainers import normalised_heatmap, register_explainer
from xai_kedro.core.xai.perturbation import (
    DEFAULT_MAX_BATCH_TOKENS,
    clean_prediction,
    rise_masks,
    shared_mask_probabilities,
)


def _initial_student(
    n_patches: int, hidden: int, seed: int, device: torch.device
) -> list[torch.Tensor]:
    """(theta [N], W [H, N], b [H], v [H], c [1]) drawn once from `seed`."""
    generator = torch.Generator().manual_seed(int(seed))
    scale = n_patches**-0.5
    weights = torch.randn(hidden, n_patches, generator=generator) * scale
    out = torch.randn(hidden, generator=generator) * hidden**-0.5
    parts = [torch.zeros(n_patches), weights, torch.zeros(hidden), out, torch.zeros(1)]
    return [p.to(device) for p in parts]


def fit_masks(
    keep: torch.Tensor,
    targets: torch.Tensor,
    *,
    hidden: int,
    steps: int,
    lr: float,
    sparsity_weight: float,
    seed: int,
) -> torch.Tensor:
    """Per-image masks m [B, N] fitted to queries keep [Q, N] (bool) with answers targets [Q, B]."""
    b, n = targets.shape[1], keep.shape[1]
    with torch.inference_mode(False), torch.enable_grad(), fp32(keep.device):
        z = keep.float().clone()
        y = targets.T.float().clone()  # [B, Q]
        init = _initial_student(n, hidden, seed, keep.device)
        params = [p.expand(b, *p.shape).clone().requires_grad_(True) for p in init]
        theta, weights, bias, out, offset = params
        optimiser = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            mask = torch.sigmoid(theta)  # [B, N]
            visible = z[None] * mask[:, None, :]  # [B, Q, N]
            h = torch.relu(torch.einsum("bqn,bhn->bqh", visible, weights) + bias[:, None, :])
            student = torch.sigmoid(torch.einsum("bqh,bh->bq", h, out) + offset)
            fit = ((student - y) ** 2).mean(dim=1)
            loss = (fit + sparsity_weight * mask.mean(dim=1)).sum()  # images do not interact
            loss.backward()
            optimiser.step()
        return torch.sigmoid(theta).detach()


@register_explainer("learned_mask")
def learned_mask_explainer(
    model: ViTClassifier,
    tokens: torch.Tensor,
    *,
    queries: int = 256,
    keep_prob: float = 0.5,
    hidden: int = 16,
    steps: int = 150,
    lr: float = 0.05,
    sparsity_weight: float = 0.05,
    seed: int = 0,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and a per-image mask fitted with a distilled student from query access."""
    if queries < 1 or steps < 1 or hidden < 1:
        raise ValueError("learned_mask: queries, steps and hidden must be >= 1")
    if not 0.0 < keep_prob < 1.0:
        raise ValueError(f"learned_mask: keep_prob must be in (0, 1), got {keep_prob}")
    if lr <= 0 or sparsity_weight < 0:
        raise ValueError("learned_mask: lr must be > 0 and sparsity_weight >= 0")
    logits, target, clean_prob = clean_prediction(model, tokens)
    keep = rise_masks(queries, tokens.shape[1] - model.n_prefix, keep_prob, seed, tokens.device)
    answers = shared_mask_probabilities(model, tokens, keep, target, clean_prob, max_batch_tokens)
    masks = fit_masks(
        keep,
        answers,
        hidden=hidden,
        steps=steps,
        lr=lr,
        sparsity_weight=sparsity_weight,
        seed=seed,
    )
    return logits, normalised_heatmap(masks)
