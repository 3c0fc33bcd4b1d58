"""Frozen-backbone CLS embeddings (Bronze): linear-probe baseline and embedding drift."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xai_kedro.core.common.device import autocast_for
from xai_kedro.core.data.preprocessing import to_model_input
from xai_kedro.core.models.families import pixel_stats


@torch.inference_mode()
def embed_images(
    backbone: nn.Module,
    images: np.ndarray,
    *,
    input_size: int,
    device: torch.device,
    batch_size: int = 128,
) -> np.ndarray:
    """[N, H, W, 3] uint8 -> [N, D] float32 CLS embeddings after the final LayerNorm."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    outputs = []
    host = torch.from_numpy(np.ascontiguousarray(images))
    mean, std = pixel_stats(backbone)
    for start in range(0, len(images), batch_size):
        x = to_model_input(host[start : start + batch_size], input_size, device, mean, std)
        with autocast_for(device):
            hidden = backbone(pixel_values=x).last_hidden_state
        outputs.append(hidden[:, 0].float().cpu())
    if not outputs:
        return np.zeros((0, backbone.config.hidden_size), dtype=np.float32)
    return torch.cat(outputs).numpy()
