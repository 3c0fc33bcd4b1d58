"""XAI + OOD engine throughput against a naive loop and the compiled forward ceiling.

DINOv2-B/14 architecture with random weights (no download), 224 px, 37 classes, three DoRA +
rsLoRA adapters (ranks 4/16/32, query/value/fc1/fc2), K = 16 deletion and insertion steps, the
nine reference corruptions. Prints forward-equivalents per second, where one (image, adapter)
is worth 1 + 2K + 9 forward passes (token_drop steps are shorter, which is the point): (a) a
naive loop, (b) the engine eager and with its forwards compiled (`core.models.compiled`), (c) the
compiled plain forward; then each registered explainer's time per image.

    python benchmarks/engine_gpu.py                # the real benchmark (GPU)
    python benchmarks/engine_gpu.py --tiny         # smoke run on CPU with a tiny model
    python benchmarks/engine_gpu.py --tiny --compile-backend eager   # ... without inductor
"""

from __future__ import annotations

import argparse
import copy
import functools
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from transformers import Dinov2Config

from benchmarks._common import commit, print_table, timed
from xai_kedro.core.adapters import (
    AdapterConfig,
    attach_adapter,
    build_inference_model,
    read_adapter_files,
    save_adapter,
)
from xai_kedro.core.common.device import autocast_for, pick_device
from xai_kedro.core.models.backbone import build_backbone, freeze
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.compiled import MODES, SHAPES, CompileSettings, compile_forwards
from xai_kedro.core.models.inference import as_uint8_images, images_x255, model_input
from xai_kedro.core.robustness.ood import OODConditions, evaluate_corruptions
from xai_kedro.core.robustness.presets import apply_spec, build_specs
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.explainers import EXPLAINERS, get_explainer
from xai_kedro.core.xai.references import (
    eager_copy,
    eager_last_layer_attention,
    reference_deletion_insertion,
)
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.core.xai.tve import TVESettings, prepare_learned_explainers, training_images

logger = logging.getLogger("engine_gpu")

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, patch_size=14)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8)


def make_zoo(config: Dinov2Config, num_classes: int, ranks: list[int], device, workdir: Path):
    torch.manual_seed(0)
    backbone = freeze(build_backbone(config))
    models = []
    for rank in ranks:
        cfg = AdapterConfig.from_params(
            {
                "adapter_id": f"r{rank}",
                "rank": rank,
                "alpha": "2r",
                "use_dora": True,
                "use_rslora": True,
                "target_roles": ["query", "value", "fc1", "fc2"],
            }
        )
        model = attach_adapter(ViTClassifier(copy.deepcopy(backbone), num_classes), cfg)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.02)
        save_adapter(model, cfg, workdir / cfg.adapter_id, {"config_hash": cfg.adapter_id})
        files = read_adapter_files(workdir / cfg.adapter_id)
        models.append(build_inference_model(backbone, files, num_classes).to(device).eval())
    return models


def naive_reference(model, images, labels, config: XAIConfig, specs, device) -> int:
    """fp32, eager attention with output_attentions, one image and one step at a time.

    What notebook code does: the model loaded with eager attention (so it can return weights),
    every forward in fp32 on one input, nothing reused between steps or corruptions.
    """
    eager = eager_copy(model)
    forwards = 0
    size = config.input_size
    for image, label in zip(images, labels, strict=True):
        x255 = images_x255(as_uint8_images(image[None]), size, device)
        heatmap = eager_last_layer_attention(eager, model_input(x255))[0]
        forwards += 1
        reference_deletion_insertion(eager, image, int(label), heatmap, config, device)
        forwards += 2 * config.steps
        seed = torch.zeros(1, dtype=torch.long)
        for spec in specs:
            x = model_input(x255, functools.partial(apply_spec, spec), seed)
            with torch.inference_mode():
                eager(x).argmax(dim=-1).item()  # a notebook reads each prediction back
            forwards += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return forwards


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _seconds(fn, device) -> float:
    """Wall time of `fn()` including the GPU work it queued."""
    seconds, _ = timed(lambda: (fn(), _sync(device)))
    return seconds


def engine(models, images, labels, config: XAIConfig, specs, device, ood_batch: int):
    """(b): every adapter through the XAI engine and the OOD stage; seconds spent in each."""
    ids = [f"img{i}" for i in range(len(images))]
    conditions = OODConditions(specs, input_size=config.input_size, batch_size=ood_batch)
    xai_s = ood_s = 0.0
    for model in models:
        xai_s += _seconds(
            lambda m=model: compute_xai(m, images, labels, None, config, device), device
        )
        ood_s += _seconds(
            lambda m=model: evaluate_corruptions(m, images, labels, ids, conditions, device=device),
            device,
        )  # fmt: skip
    return xai_s, ood_s


def compiled_engine(models, images, labels, config, specs, device, ood_batch, settings):
    """(b) with compiled forwards: compile + warm up on every shape of the run (one adapter,
    all images: a smaller warm-up would leave the last chunks' shapes to the timed run), then
    time all adapters. Returns the warm-up seconds and the XAI / OOD seconds. Compiles the
    models in place, so it runs after every eager measure."""
    models = [compile_forwards(m, settings, device) for m in models]
    start = time.perf_counter()
    engine(models[:1], images, labels, config, specs, device, ood_batch)
    warm_up_s = time.perf_counter() - start
    logger.info("compiled engine: compile + warm-up %.1f s", warm_up_s)
    seconds = engine(models, images, labels, config, specs, device, ood_batch)
    calls = {}
    for forward in ("forward_tokens", "forward"):
        wrappers = [getattr(m, forward) for m in models]
        eager = sum((w.eager_calls for w in wrappers), Counter())
        calls[forward] = (sum(w.compiled_calls for w in wrappers), dict(eager))
        if wrappers[0].shared.failed:
            logger.error("compiled engine: %s fell back to eager", forward)
    logger.info("compiled engine calls (compiled, eager by reason): %s", calls)
    return (warm_up_s, *seconds), calls


def learned_settings(model, images, size: int, folder: Path, tiny: bool) -> dict[str, dict]:
    """TVE pre-trained on the benchmark's images and DAX's training images (in ``folder``): the
    amortised explainers' artifacts. Their training is not in the per-image figures (TVE's is
    done here, DAX's in its warm-up call); `benchmarks/amortised_explainers.py` times both."""
    quick = TVESettings(images=len(images), epochs=2 if tiny else 30)
    made = prepare_learned_explainers(
        folder, model.backbone, training_images(np.asarray(images), size), "engine_gpu", quick
    )
    dax = {"images": made["images"], "cache_dir": made["dax_cache"]}
    return {"tve": {"weights": made["tve"]}, "dax": dax | ({"epochs": 2} if tiny else {})}


def explainer_seconds_per_image(model, images, size: int, device, learned) -> dict[str, float]:
    """Each registered explainer with its default settings (``learned``: the amortised ones'
    artifacts) on one chunk, clean forward included (as the leaderboard times it): seconds per
    image, after a warm-up call."""
    x = model_input(images_x255(as_uint8_images(images), size, device))
    out = {}
    for name in sorted(EXPLAINERS):
        explainer = get_explainer(name, **learned.get(name, {}))
        with torch.inference_mode(), autocast_for(device):
            tokens = model.embed(x)
            explainer(model, tokens[:2])
            _sync(device)
            seconds = _seconds(lambda e=explainer, t=tokens: e(model, t), device)
        out[name] = seconds / len(images)
        logger.info("explainer %s: %.2f ms per image", name, 1000 * out[name])
    return out


def forward_ceiling(model, size: int, batch: int, device, iters: int, compile_model: bool) -> float:
    """Images per second of the plain forward on random input: bf16 on CUDA (compiled or
    eager), fp32 on CPU."""
    forward = torch.compile(model) if compile_model else model
    x = torch.randn(batch, 3, size, size, device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"),
    ):
        for _ in range(3):
            forward(x)
        _sync(device)

        def run() -> None:
            for _ in range(iters):
                forward(x)
            _sync(device)

        seconds, _ = timed(run)
    return batch * iters / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small model, CPU-friendly smoke run")
    parser.add_argument("--images", type=int, default=None, help="images for the engine run")
    parser.add_argument("--naive-images", type=int, default=None)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=None, help="engine chunk size (images)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile-backend", default="inductor", help="eager: trace only")
    parser.add_argument("--compile-mode", default="default", choices=MODES)
    parser.add_argument("--compile-shapes", default="bucketed", choices=SHAPES)
    parser.add_argument("--explainer-images", type=int, default=None)
    args = parser.parse_args()

    device = pick_device(args.device)
    size = 32 if args.tiny else 224
    arch = TINY if args.tiny else BASE
    n_images = args.images or (16 if args.tiny else 1024)
    n_naive = args.naive_images or (2 if args.tiny else 8)
    n_explain = args.explainer_images or (4 if args.tiny else 32)
    chunk = args.batch or (16 if args.tiny else 256)
    num_classes = 37
    config = Dinov2Config(image_size=size, mlp_ratio=4, **arch)
    specs = build_specs("reference")
    xai = XAIConfig.from_params(
        {"steps": args.steps, "input_size": size, "batch_size": chunk, "max_batch_tokens": 1 << 21}
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_images, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n_images)

    with tempfile.TemporaryDirectory() as tmp:
        models = make_zoo(config, num_classes, [4, 16, 32], device, Path(tmp))
    logger.info("zoo of %d merged adapters on %s", len(models), device)
    naive_s, naive_fwd = timed(
        lambda: naive_reference(models[0], images[:n_naive], labels[:n_naive], xai, specs, device)
    )
    naive_rate = naive_fwd / naive_s
    logger.info("(a) naive: %.1f fwd-eq/s (%d images)", naive_rate, n_naive)
    ood_batch = 4 * chunk
    engine(models[:1], images[:chunk], labels[:chunk], xai, specs, device, ood_batch)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    xai_s, ood_s = engine(models, images, labels, xai, specs, device, ood_batch)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    pairs = len(models) * n_images
    xai_fwd, ood_fwd = pairs * (1 + 2 * args.steps), pairs * len(specs)
    engine_rate = (xai_fwd + ood_fwd) / (xai_s + ood_s)
    logger.info("(b) engine: %.1f fwd-eq/s in %.2f s", engine_rate, xai_s + ood_s)
    with tempfile.TemporaryDirectory() as artifacts:
        sample = images[:n_explain]
        learned = learned_settings(models[0], sample, size, Path(artifacts), args.tiny)
        explainer_s = explainer_seconds_per_image(models[0], sample, size, device, learned)

    iters = 3 if args.tiny else 20
    eager_ips = forward_ceiling(models[0], size, chunk, device, iters, compile_model=False)
    compiled_ips, compile_error = float("nan"), None
    if device.type == "cuda":
        try:
            compiled_ips = forward_ceiling(models[0], size, chunk, device, iters, True)
        except Exception as exc:  # reported in the table and the exit status, not hidden
            compile_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            logger.error("torch.compile failed: %s", compile_error)
    ceiling = compiled_ips if device.type == "cuda" else eager_ips
    if device.type != "cuda":
        ceiling_text = "CPU: not compiled, (b) / (c) uses the eager forward"
    else:
        ceiling_text = compile_error or f"{compiled_ips:,.1f}"
    logger.info("forward images/s: eager %.1f, (c) compiled %s", eager_ips, ceiling_text)

    settings = CompileSettings(
        enabled=True,
        backend=args.compile_backend,
        mode=args.compile_mode,
        shapes=args.compile_shapes,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    (warm_up_s, cxai_s, cood_s), calls = compiled_engine(
        models, images, labels, xai, specs, device, ood_batch, settings
    )
    compiled_peak = (
        torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    )
    compiled_rate = (xai_fwd + ood_fwd) / (cxai_s + cood_s)
    logger.info("(b) compiled engine: %.1f fwd-eq/s in %.2f s", compiled_rate, cxai_s + cood_s)

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print_table(
        f"engine_gpu ({'tiny' if args.tiny else 'DINOv2-B/14'}, {card}, commit {commit()})",
        [
            ("device", card),
            ("torch", torch.__version__),
            ("images x adapters (engine)", f"{n_images} x {len(models)}"),
            ("forward-equivalents per (image, adapter)", str(1 + 2 * args.steps + len(specs))),
            ("(a) naive fwd-eq/s", f"{naive_rate:,.1f}"),
            ("(b) engine fwd-eq/s", f"{engine_rate:,.1f}"),
            ("(b) XAI part fwd-eq/s", f"{xai_fwd / xai_s:,.1f}"),
            ("(b) OOD part fwd-eq/s", f"{ood_fwd / ood_s:,.1f}"),
            ("forward, eager (bf16 on CUDA), images/s", f"{eager_ips:,.1f}"),
            ("(c) compiled bf16 forward ceiling, images/s", ceiling_text),
            ("(b) / (c)", f"{engine_rate / ceiling:.1%}"),
            ("(b) / (a) speed-up", f"{engine_rate / naive_rate:,.1f}x"),
            ("engine wall time (s)", f"{xai_s + ood_s:,.2f}"),
            ("peak GPU memory of (b) (GiB)", f"{peak:.2f}"),
            (
                "compiled forwards (backend, mode, shapes)",
                f"{settings.backend}, {settings.mode}, {settings.shapes}",
            ),
            *(
                (f"{forward} calls: compiled / eager (why)", f"{done} / {eager or 0}")
                for forward, (done, eager) in calls.items()
            ),
            ("(b) compiled engine fwd-eq/s", f"{compiled_rate:,.1f}"),
            ("(b) compiled XAI part fwd-eq/s", f"{xai_fwd / cxai_s:,.1f}"),
            ("(b) compiled OOD part fwd-eq/s", f"{ood_fwd / cood_s:,.1f}"),
            ("(b) compiled / (c)", f"{compiled_rate / ceiling:.1%}"),
            ("(b) compiled / (a) speed-up", f"{compiled_rate / naive_rate:,.1f}x"),
            ("compile + warm-up of the compiled engine (s)", f"{warm_up_s:,.1f}"),
            ("peak GPU memory of (b) compiled (GiB)", f"{compiled_peak:.2f}"),
            *(
                (f"explainer {name}: ms per image ({n_explain} images, eager)", f"{1000 * s:,.2f}")
                for name, s in explainer_s.items()
            ),
        ],
    )
    if compile_error:
        raise SystemExit(f"the compiled ceiling could not be measured: {compile_error}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    main()
