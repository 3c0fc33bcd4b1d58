"""What the amortised explainers add to the default `base` run: TVE's pre-training (once per
backbone) and DAX's training (once per adapter, base's leaderboard scores 2), measured on a
backbone of base's shape (48 px, 6 x 6 patches, 4 layers, width 96) with base's settings.

The budget (docs/metrics.md, conf/base/parameters_xai_silver.yml): TVE pre-training plus DAX on
the leaderboard's adapters under 40 s on 2 CPU cores, since the default `kedro run` is close to
its 10 minutes. Also times one chunk of 32 images through tve, dax and occlusion (explanation
only). Random weights and images: the cost does not depend on what was learned.

    python benchmarks/amortised_explainers.py          # ~1 min on 2 cores
    taskset -c 0,1 python benchmarks/amortised_explainers.py --threads 2   # 2 cores of a larger box
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
import yaml

from benchmarks._common import ROOT, commit, print_table
from xai_kedro.core.common.rng import seeded_rng
from xai_kedro.core.models.backbone import build_backbone, freeze, small_backbone_config
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.amortised import training_cost
from xai_kedro.core.xai.explainers import get_explainer
from xai_kedro.core.xai.tve import TVESettings, prepare_learned_explainers, with_artifacts

BASE_SHAPE = dict(image_size=48, patch_size=8, hidden_size=96, num_layers=4, num_heads=3)
ADAPTERS = 2  # base's leaderboard.max_adapters


def _models() -> tuple[torch.nn.Module, list[ViTClassifier]]:
    with seeded_rng(0):
        backbone = freeze(build_backbone(small_backbone_config(**BASE_SHAPE)))
        heads = [ViTClassifier(backbone, 6).eval() for _ in range(ADAPTERS)]
    return backbone, heads


def base_settings() -> tuple[dict, dict]:
    """`xai_silver.tve` and `xai_silver.explainers.dax` as conf/base states them."""
    block = yaml.safe_load((ROOT / "conf/base/parameters_xai_silver.yml").read_text())["xai_silver"]
    return block.get("tve") or {}, (block.get("explainers") or {}).get("dax") or {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    args = parser.parse_args()
    tve, dax = base_settings()
    settings = TVESettings.from_params(tve)
    if args.threads:
        torch.set_num_threads(args.threads)
    backbone, models = _models()
    images = np.random.default_rng(0).integers(0, 256, (settings.images, 48, 48, 3), dtype=np.uint8)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        artifacts = prepare_learned_explainers(folder, backbone, images, "bench", settings)
        tve_s = time.perf_counter() - start
        rows.append(["TVE pre-training (once per backbone)", f"{tve_s:.1f}"])
        rows.append(["  of which masked-input queries", f"{artifacts['query_seconds']:.1f}"])
        block = with_artifacts({"tve": {}, "dax": dax, "occlusion": {}}, artifacts)
        explainers = {name: get_explainer(name, **s) for name, s in block.items()}
        dax_total = 0.0
        for i, model in enumerate(models):
            start = time.perf_counter()
            training_cost(explainers["dax"], model)
            dax_s = time.perf_counter() - start
            dax_total += dax_s
            rows.append([f"DAX training, adapter {i + 1}", f"{dax_s:.1f}"])
        rows.append([f"total added (TVE + DAX x {ADAPTERS})", f"{tve_s + dax_total:.1f}"])
        pixels = torch.randn(32, 3, 48, 48)
        with torch.inference_mode():
            tokens = models[0].embed(pixels)
            for name, explainer in explainers.items():
                start = time.perf_counter()
                explainer(models[0], tokens)
                ms = 1000 * (time.perf_counter() - start) / len(tokens)
                rows.append([f"{name}: explanation per image (ms)", f"{ms:.2f}"])
        rows.append(["TVE held-out R^2 (random backbone)", f"{artifacts['held_out_r2']:.3f}"])
    title = f"Amortised explainers on base's shape ({torch.get_num_threads()} threads, {commit()})"
    print_table(title, [(k, v) for k, v in rows])


if __name__ == "__main__":
    main()
