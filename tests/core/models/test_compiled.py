"""Compiled forwards: eager's outputs, a bounded number of graphs, eager where compiling fails."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from tests.core.tiny import needs_cuda, tiny_backbone
from xai_kedro.core.models import compiled
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.compiled import (
    CompileSettings,
    compile_forwards,
    is_compiled,
    row_bucket,
)
from xai_kedro.core.models.inference import TransformSpec, evaluate_transforms
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.explainers import get_explainer
from xai_kedro.core.xai.settings import XAIConfig

FAILING_BACKEND = "xai_kedro_test_failing_backend"


def _failing_backend(graph: torch.fx.GraphModule, example_inputs: list) -> None:
    raise RuntimeError("this backend cannot compile anything")


if FAILING_BACKEND not in torch._dynamo.list_backends(exclude_tags=()):
    torch._dynamo.register_backend(_failing_backend, name=FAILING_BACKEND)


@pytest.fixture(autouse=True)
def fresh_compiler(monkeypatch):
    """Every test starts with no compiled graph and no shared compiled function."""
    torch._dynamo.reset()
    monkeypatch.setattr(compiled, "_SHARED", {})
    yield
    torch._dynamo.reset()


def tiny_model(registers: int = 1, layers: int = 1, seed: int = 0) -> ViTClassifier:
    return ViTClassifier(tiny_backbone(registers, seed, layers=layers, heads=2), 5).eval()


def graphs_compiled() -> int:
    return int(counters["stats"]["unique_graphs"])


def on(**overrides) -> CompileSettings:
    return CompileSettings(enabled=True, **overrides)


def token_sequences(model: ViTClassifier, rows: int, counts: list[int]) -> list[torch.Tensor]:
    """Prefix + the first `count` patch tokens of random images, for each count."""
    torch.manual_seed(1)
    with torch.inference_mode():
        tokens = model.embed(torch.randn(rows, 3, 32, 32))
    return [tokens[:, : model.n_prefix + count] for count in counts]


def test_row_buckets_pad_at_most_a_third_and_never_shrink():
    assert [row_bucket(r, 8, 2) for r in (1, 8, 9, 13, 17, 25, 257, 1017)] == [
        8, 8, 12, 16, 24, 32, 384, 1024,
    ]  # fmt: skip
    for per_octave in (1, 2, 4):
        buckets = [row_bucket(r, 8, per_octave) for r in range(1, 2049)]
        assert all(b >= r for r, b in zip(range(1, 2049), buckets, strict=True))
        assert buckets == sorted(buckets)
        waste = [(b - r) / b for r, b in zip(range(9, 2049), buckets[8:], strict=True)]
        assert max(waste) < 1 / (per_octave + 1)
        assert len(set(buckets)) <= 1 + per_octave * 8  # 8 .. 2048: eight octaves
    with pytest.raises(ValueError, match="rows"):
        row_bucket(0, 8, 2)


def test_settings_are_checked_and_off_on_cpu_by_default():
    model = tiny_model()
    assert compile_forwards(model, None, "cpu") is model and not is_compiled(model)
    assert CompileSettings().active_on("cuda") and not CompileSettings().active_on("cpu")
    with pytest.raises(ValueError, match=r"unknown setting execution\.compile\.shape;"):
        CompileSettings.from_params({"shape": "static"})
    with pytest.raises(ValueError, match="compile.mode"):
        CompileSettings(mode="fast")
    with pytest.raises(ValueError, match="compile.min_rows"):
        CompileSettings(min_rows=0)
    with pytest.raises(ValueError, match="eval mode"):
        compile_forwards(tiny_model().train(), on(backend="eager"), "cpu")


def test_inductor_forwards_equal_eager_with_one_graph_per_bucket():
    """The CPU inductor: every token count and row count of one bucket share one graph."""
    model = tiny_model()
    fast = compile_forwards(copy.deepcopy(model), on(min_rows=8), "cpu")
    assert is_compiled(fast) and not is_compiled(model)
    before = graphs_compiled()
    with torch.inference_mode():
        for rows in (8, 5):
            for seq in token_sequences(model, rows, [16, 9, 3]):
                torch.testing.assert_close(
                    fast.forward_tokens(seq), model.forward_tokens(seq), atol=1e-5, rtol=1e-5
                )
        pixels = torch.randn(6, 3, 32, 32)
        torch.testing.assert_close(fast(pixels), model(pixels), atol=1e-5, rtol=1e-5)
    assert graphs_compiled() - before == 2  # forward_tokens (tokens dynamic) and forward


def test_engine_and_ood_compile_a_bounded_number_of_graphs():
    """Whole XAI and OOD runs (uneven chunks, K + 1 token counts, two adapters): the rows of
    `compute_xai` and `evaluate_transforms` are eager's, and the graphs are few."""
    model, other = tiny_model(), tiny_model(seed=3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (11, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, 11)
    config = XAIConfig(steps=8, batch_size=4)
    specs = [
        TransformSpec("contrast", "1", 0.5, lambda x, seeds: 0.5 * x + 64.0),
        TransformSpec("clean", "0", 0.0, None),
    ]
    settings = on(backend="eager", min_rows=8)
    before = graphs_compiled()
    graphs_after = []
    for net in (model, other):
        fast = compile_forwards(copy.deepcopy(net), settings, "cpu")
        xai, want_xai = (compute_xai(m, images, labels, None, config) for m in (fast, net))
        numeric = [c for c in xai.columns if c != "heatmap"]
        np.testing.assert_allclose(
            xai[numeric].to_numpy(float), want_xai[numeric].to_numpy(float), rtol=1e-5, atol=1e-6
        )
        ood, want_ood = (
            evaluate_transforms(m, images, labels, specs, batch_size=6) for m in (fast, net)
        )
        np.testing.assert_allclose(ood["confidence"], want_ood["confidence"], rtol=1e-5)
        graphs_after.append(graphs_compiled() - before)
        forwards = (fast.forward_tokens, fast.forward)
        assert all(f.compiled_calls > 0 and not f.eager_calls for f in forwards)
    # every row count of this run (chunks of 4 and 3 images, one or both curves, OOD batches of
    # 6 and 4 rows) pads to 8, and the token count is dynamic: one graph per shape key, at most
    # two per forward (the prefix-only sequence is specialised apart)
    shape_keys = len(fast.forward_tokens.shapes) + len(fast.forward.shapes)
    assert graphs_after[0] == shape_keys <= 4
    assert graphs_after[1] == graphs_after[0]  # the second adapter reuses the graphs


@pytest.mark.parametrize(("shapes", "graphs"), [("bucketed", 2), ("static", 4), ("dynamic", 1)])
def test_each_shape_policy_compiles_its_number_of_graphs(shapes, graphs):
    """Rows 3, 5, 11 (buckets 8, 8, 12) x two token counts."""
    model = tiny_model()
    fast = compile_forwards(copy.deepcopy(model), on(backend="eager", shapes=shapes), "cpu")
    before = graphs_compiled()
    with torch.inference_mode():
        for rows in (3, 5, 11):
            for seq in token_sequences(model, rows, [16, 9]):
                torch.testing.assert_close(fast.forward_tokens(seq), model.forward_tokens(seq))
    assert graphs_compiled() - before == graphs
    assert fast.forward_tokens.compiled_calls == 6


def test_static_shapes_stop_compiling_at_max_graphs(caplog):
    model = tiny_model()
    fast = compile_forwards(
        copy.deepcopy(model), on(backend="eager", shapes="static", max_graphs=2), "cpu"
    )
    before = graphs_compiled()
    with torch.inference_mode(), caplog.at_level(logging.WARNING, logger=compiled.__name__):
        for seq in token_sequences(model, 4, [16, 12, 8, 4]) * 2:
            torch.testing.assert_close(fast.forward_tokens(seq), model.forward_tokens(seq))
    assert graphs_compiled() - before == 2
    assert len(fast.forward_tokens.shapes) == 2
    assert fast.forward_tokens.compiled_calls == 4  # both shapes, twice
    assert fast.forward_tokens.eager_calls == {"max_graphs": 4}
    assert sum("compile.max_graphs" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("where", ["torch.compile", "backend"])
def test_a_failing_compile_falls_back_to_eager_logged_once(where, monkeypatch, caplog):
    if where == "torch.compile":

        def refuse(*args, **kwargs):
            raise RuntimeError("torch.compile is not supported here")

        monkeypatch.setattr(torch, "compile", refuse)
    settings = on(backend=FAILING_BACKEND)
    models = [tiny_model(), tiny_model(seed=2)]
    with torch.inference_mode(), caplog.at_level(logging.WARNING, logger=compiled.__name__):
        for model in models:
            fast = compile_forwards(copy.deepcopy(model), settings, "cpu")
            for seq in token_sequences(model, 3, [16, 5]):
                torch.testing.assert_close(fast.forward_tokens(seq), model.forward_tokens(seq))
    failures = [r.getMessage() for r in caplog.records if "eager from now on" in r.getMessage()]
    # once per process and forward, however many models and calls
    assert sum("of forward_tokens" in message for message in failures) == 1
    assert len(failures) == (2 if where == "torch.compile" else 1)  # `forward` never ran


def test_out_of_memory_is_not_hidden_by_the_fallback(monkeypatch):
    model = tiny_model()
    fast = compile_forwards(copy.deepcopy(model), on(backend="eager"), "cpu")

    def out_of_memory(*args):
        raise torch.OutOfMemoryError("no memory left")

    monkeypatch.setattr(fast.forward_tokens.shared, "compiled", out_of_memory)
    with torch.inference_mode(), pytest.raises(torch.OutOfMemoryError):
        fast.forward_tokens(token_sequences(model, 2, [16])[0])


def test_hooks_and_autograd_run_eager():
    """Rollout (forward hooks) and gradient explainers (autograd) bypass the graphs."""
    model = tiny_model(layers=2)
    fast = compile_forwards(copy.deepcopy(model), on(backend="eager"), "cpu")
    seq = token_sequences(model, 3, [16])[0]
    before = graphs_compiled()
    with torch.inference_mode():
        logits, heat = get_explainer("rollout")(fast, seq)
        want_logits, want_heat = get_explainer("rollout")(model, seq)
    torch.testing.assert_close(heat, want_heat)
    torch.testing.assert_close(logits, want_logits)
    x = seq.clone().requires_grad_(True)
    fast.forward_tokens(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert graphs_compiled() == before
    assert fast.forward_tokens.eager_calls == {"forward hooks": 1, "autograd": 1}
    assert fast.forward_tokens.compiled_calls == 0


# --- CUDA (run on a GPU machine: scripts/gpu_check.sh; skipped in CI) ------------------------


@needs_cuda
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_cuda_compiled_engine_matches_eager(mode):
    """bf16 autocast on the GPU: compiled (and CUDA-graph captured) rows equal eager's."""
    model = tiny_model().cuda()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 5, 10)
    config = XAIConfig(steps=4, batch_size=4)
    fast = compile_forwards(copy.deepcopy(model), on(mode=mode), "cuda")
    got, want = (compute_xai(m, images, labels, None, config, "cuda") for m in (fast, model))
    assert not any(s.failed for s in compiled._SHARED.values())
    assert fast.forward_tokens.compiled_calls > 0 and not fast.forward_tokens.eager_calls
    numeric = [c for c in got.columns if c != "heatmap"]
    np.testing.assert_allclose(
        got[numeric].to_numpy(float), want[numeric].to_numpy(float), rtol=0.05, atol=0.02
    )  # bf16: fused kernels round differently; the heatmap (eager in both) is the same


@pytest.mark.parametrize(
    "family", ["dinov2_with_registers", "vit", "deit", "clip_vision", "siglip_vision"]
)
def test_other_families_compiled_forwards_equal_eager(family, tmp_path):
    """The compiled path beyond DINOv2: CLS with registers, CLS alone (ViT, CLIP), DeiT's
    distillation token, SigLIP's none; the forwards and the XAI rows are eager's."""
    from tests.core.models.test_families import save_tiny
    from xai_kedro.core.models.backbone import load_backbone

    torch.manual_seed(1)
    model = ViTClassifier(load_backbone(save_tiny(family, tmp_path / family)), 5).eval()
    fast = compile_forwards(copy.deepcopy(model), on(backend="eager", min_rows=8), "cpu")
    with torch.inference_mode():
        for seq in token_sequences(model, 5, [16, 9, 3]):
            torch.testing.assert_close(fast.forward_tokens(seq), model.forward_tokens(seq))
        pixels = torch.randn(6, 3, 32, 32)
        torch.testing.assert_close(fast(pixels), model(pixels))
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(5) % 5
    config = XAIConfig(steps=4, batch_size=4)
    xai, want = (compute_xai(m, images, labels, None, config) for m in (fast, model))
    numeric = [c for c in xai.columns if c != "heatmap"]
    np.testing.assert_allclose(
        xai[numeric].to_numpy(float), want[numeric].to_numpy(float), rtol=1e-5, atol=1e-6
    )
    assert fast.forward_tokens.compiled_calls > 0 and not fast.forward_tokens.eager_calls
