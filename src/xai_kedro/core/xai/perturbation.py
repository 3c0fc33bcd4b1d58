"""Perturbation explainers in token-drop form: RISE and leave-one-patch-out occlusion.

Both need only query access to the model (no gradients, no attention weights). A perturbation is
a keep-mask over the N patch tokens shared by every image of the chunk; the kept tokens are
gathered from the one embedding of the chunk (CLS and registers always stay), and all masks that
keep the same number of tokens run as batched forwards through the deletion curves' scorer
(`curves._ChunkScorer.token_drop`, split by the token budget). Sharing the masks across images
makes a chunk's result independent of which other images are in it.

* `rise` (Petsiuk, Das & Saenko, 2018, "RISE: Randomized Input Sampling for Explanation of
  Black-box Models"): M random keep-masks, each patch kept with probability `keep_prob`; the
  heatmap is the average of the masks weighted by the target probability of the masked input.
  RISE's smooth upsampled pixel masks become patch-level token masks here.
* `occlusion` (Zeiler & Fergus, 2014, "Visualizing and Understanding Convolutional Networks"):
  one forward per patch without it; the heatmap is the drop of the target probability, clipped
  at 0 (a patch whose removal raises the probability gets no importance).

The explained class is the clean predicted class.
"""

from __future__ import annotations

import torch

from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.explainers import normalised_heatmap, register_explainer

DEFAULT_MAX_BATCH_TOKENS = 262_144  # the engine's default token budget of one forward


def _scorer(model: ViTClassifier, max_batch_tokens: int, device: torch.device):
    """The curves' batched token-drop scorer (imported here: curves -> settings -> registry)."""
    from xai_kedro.core.xai.curves import _ChunkScorer
    from xai_kedro.core.xai.settings import XAIConfig

    return _ChunkScorer(model, XAIConfig(max_batch_tokens=max_batch_tokens), device)


def shared_mask_probabilities(
    model: ViTClassifier,
    tokens: torch.Tensor,
    keep: torch.Tensor,
    target: torch.Tensor,
    clean_prob: torch.Tensor,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> torch.Tensor:
    """Target probability [M, B] of every image under every keep-mask keep [M, N] (bool).

    Masks are grouped by their kept count; a mask keeping every patch is the clean input and
    reuses `clean_prob` [B].
    """
    b, n = tokens.shape[0], tokens.shape[1] - model.n_prefix
    if keep.ndim != 2 or keep.shape[1] != n:
        raise ValueError(f"keep must be [M, {n}] (one column per patch), got {tuple(keep.shape)}")
    scorer = _scorer(model, max_batch_tokens, tokens.device)
    counts = keep.sum(dim=1)
    out = torch.empty(keep.shape[0], b, device=tokens.device, dtype=torch.float32)
    for count in torch.unique(counts).tolist():
        rows = torch.nonzero(counts == count)[:, 0]
        if count == n:
            out[rows] = clean_prob.float()[None]
            continue
        # ascending kept indices per mask, one row per (mask, image): row j * B + b
        kept = torch.nonzero(keep[rows])[:, 1].view(len(rows), count)
        kept = kept.repeat_interleave(b, dim=0)
        out[rows] = torch.exp(scorer.token_drop(tokens, kept, target)).view(len(rows), b)
    return out


def clean_prediction(
    model: ViTClassifier, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean logits, predicted class and its probability."""
    logits = model.forward_tokens(tokens)
    target = logits.argmax(dim=1)
    prob = torch.softmax(logits.float(), dim=-1).gather(1, target[:, None])[:, 0]
    return logits, target, prob


def rise_masks(
    count: int, n_patches: int, keep_prob: float, seed: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """[count, n_patches] bool keep-masks, each patch kept with probability `keep_prob`;
    drawn on the CPU from `seed`, so every device and chunk sees the same masks."""
    generator = torch.Generator().manual_seed(int(seed))
    draws = torch.rand(count, n_patches, generator=generator)
    return (draws < keep_prob).to(device)


@register_explainer("rise")
def rise_explainer(
    model: ViTClassifier,
    tokens: torch.Tensor,
    *,
    masks: int = 256,
    keep_prob: float = 0.5,
    seed: int = 0,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and RISE saliency: sum_m p(target | mask m) * m over the masks, renormalised."""
    if masks < 1:
        raise ValueError(f"rise: masks must be >= 1, got {masks}")
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"rise: keep_prob must be in (0, 1], got {keep_prob}")
    logits, target, clean_prob = clean_prediction(model, tokens)
    keep = rise_masks(masks, tokens.shape[1] - model.n_prefix, keep_prob, seed, tokens.device)
    probs = shared_mask_probabilities(
        model, tokens, keep, target, clean_prob, max_batch_tokens
    )  # [M, B]
    saliency = torch.matmul(probs.T, keep.float()) / masks
    return logits, normalised_heatmap(saliency)


@register_explainer("occlusion")
def occlusion_explainer(
    model: ViTClassifier,
    tokens: torch.Tensor,
    *,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and leave-one-patch-out importance p(clean) - p(without patch i), clipped at 0."""
    logits, target, clean_prob = clean_prediction(model, tokens)
    n = tokens.shape[1] - model.n_prefix
    keep = ~torch.eye(n, dtype=torch.bool, device=tokens.device)  # mask i drops patch i
    probs = shared_mask_probabilities(model, tokens, keep, target, clean_prob, max_batch_tokens)
    return logits, normalised_heatmap(clean_prob.float()[:, None] - probs.T)
