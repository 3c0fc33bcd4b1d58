"""Seeded randomness that leaves the caller's RNG state as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed torch (CPU and CUDA) inside the block and restore the caller's RNG state after."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
