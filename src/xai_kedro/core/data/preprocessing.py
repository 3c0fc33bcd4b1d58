"""uint8 images -> normalised model input, done on the device so the CPU never does float work."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, W, 3] uint8 -> [B, 3, size, size] float in 0..255 (antialiased bilinear)."""
    x = images.permute(0, 3, 1, 2).float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x


def normalise(
    x255: torch.Tensor,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """[B, 3, H, W] float on the 0..255 scale -> standardised model input."""
    m = torch.tensor(mean, device=x255.device, dtype=x255.dtype).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, device=x255.device, dtype=x255.dtype).view(1, 3, 1, 1) * 255.0
    return (x255 - m) / s


def to_model_input(
    images: torch.Tensor,
    size: int,
    device: torch.device | str = "cpu",
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """[B, H, W, 3] uint8 (any device) -> normalised [B, 3, size, size] float32 on `device`."""
    return normalise(resize_uint8(images.to(device, non_blocking=True), size), mean, std)
