"""Torch thread policy outside Spark: threads x OpenMP wait policy, on an idle and a busy machine.

Each configuration runs in a fresh interpreter (libgomp reads `OMP_WAIT_POLICY` once, at load):
a plain batched forward of the `base` backbone (48 px, 4 layers, width 96) and the XAI engine's
token-drop curves (one short forward per step), best of three. "Busy" starts one spinning
Python process per core beside it, as a second job, a Spark worker or a test run would be; the
script stops them by PID. The policy chosen from these figures lives in `core.common.threads`.

    python benchmarks/thread_policy.py            # ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks._common import ROOT, commit, print_table

_CHILD = r"""
import json, sys, time
import numpy as np, torch
from xai_kedro.core.models.backbone import build_backbone, freeze, small_backbone_config
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.settings import XAIConfig

threads, images = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
backbone = freeze(build_backbone(small_backbone_config(image_size=48)))
model = ViTClassifier(backbone, num_classes=6).eval()
rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, size=(images, 48, 48, 3), dtype=np.uint8)
labels = rng.integers(0, 6, size=images)
x = torch.randn(images, 3, 48, 48)

def best(fn, repeats=3):
    out = float("inf")
    for _ in range(repeats):
        start = time.perf_counter(); fn(); out = min(out, time.perf_counter() - start)
    return out

with torch.inference_mode():
    model(x)  # warm-up
    forward = best(lambda: [model(x) for _ in range(10)]) / (10 * images)
token_drop = best(lambda: compute_xai(model, pixels, labels, config=XAIConfig(input_size=48)))
print(json.dumps({"forward_ms": 1e3 * forward, "token_drop_ms": 1e3 * token_drop / images}))
"""


def _child(threads: int, policy: str, images: int) -> dict[str, float]:
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "PYTHONPATH": str(ROOT / "src")}
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(threads), str(images)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="spinning processes")
    args = parser.parse_args()
    # "" leaves libgomp's default (spin, then sleep): the package's own default is not applied
    # because the variable exists.
    configs = [(t, p) for t in (1, 2) for p in ("", "PASSIVE")]
    rows: list[tuple[str, str]] = []
    for load in ("idle", "busy"):
        spinners = _spinners(args.busy) if load == "busy" else []
        try:
            time.sleep(0.5 if spinners else 0)
            for threads, policy in configs:
                r = _child(threads, policy, args.images)
                name = (
                    f"{load}, {threads} thread{'s' if threads > 1 else ''}, {policy or 'default'}"
                )
                rows.append(
                    (
                        name,
                        f"forward {r['forward_ms']:.2f} ms/img, token-drop "
                        f"{r['token_drop_ms']:.1f} ms/img",
                    )
                )
        finally:
            for proc in spinners:
                proc.kill()
                proc.wait()
    rows.append(("cores", str(os.cpu_count())))
    rows.append(("commit", commit()))
    print_table("Thread policy (CPU)", rows)


if __name__ == "__main__":
    main()
