"""Device and precision policy: CUDA when present (bf16 autocast), else CPU (fp32)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    """`preferred` may force "cpu"/"cuda"; `None` or "auto" picks CUDA when available."""
    if preferred and preferred != "auto":
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def autocast_for(device: torch.device) -> Iterator[None]:
    """bf16 autocast on CUDA; plain fp32 on CPU (CPU bf16 is slower and less exact)."""
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield
