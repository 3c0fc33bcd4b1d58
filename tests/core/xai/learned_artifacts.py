"""Tiny artifacts for the amortised explainers (`tve`, `dax`) in the registry-wide contract
tests: an untrained TVE network for `tiny_model`'s width and a file of unlabeled images."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.xai.amortised import PatchNet
from xai_kedro.core.xai.tve import save_tve


@functools.lru_cache(maxsize=1)
def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="learned_explainers_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with seeded_rng(0):
        net = PatchNet(dim=32, out=64, hidden=16, layers=1, heads=4)
        torch.nn.init.normal_(net.read[1].weight)  # a non-zero attribution to transfer
    save_tve(net, {"seconds": 1.5, "fingerprint": "test"}, folder / "tve")
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    np.save(folder / "images.npy", images)
    return folder


def learned_settings(name: str) -> dict[str, Any]:
    """Quick settings of `name` with its artifact (empty for explainers that do not train)."""
    if name == "tve":
        return {"weights": str(_folder() / "tve")}
    if name == "dax":
        return {"images": str(_folder() / "images.npy"), "queries": 16, "epochs": 3}
    return {}
