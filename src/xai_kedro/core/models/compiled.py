"""The classifier's batched forwards compiled with `torch.compile`, with a bounded number of graphs.

The XAI engine and the OOD stage call `model.forward_tokens(seq)` (token-drop steps) and
`model(x)` (pixel steps, corruptions) with shapes that change from call to call: the row count
(images x steps in one forward; the last chunk is smaller) and the token count (one per curve
step). A compiled graph is specialised to its shapes, so left alone `torch.compile` would compile
again for nearly every call and, past its recompile limit, silently stop compiling. Here:

* the ROW count is padded up to a bucket (`min_rows`, then `buckets_per_octave` evenly spaced
  buckets per doubling). Rows are independent, so padding rows is exact: the
  padded rows' outputs are dropped.
* the TOKEN count is never padded (every token is attended to, so extra tokens would change the
  result). With `shapes: bucketed` the token dimension is compiled dynamic: one graph serves every
  curve step (a prefix-only sequence of one token is specialised apart). `shapes: static` gives
  each (row bucket, token count) its own graph, at most K + 1 per bucket; `shapes: dynamic`
  neither pads nor specialises rows.
* `mode: reduce-overhead` captures CUDA graphs of the compiled forwards (one per shape); their
  outputs are copied out before the next replay can overwrite them.
* forwards that need what a graph does not give run eager: autograd (gradient explainers) and
  forward hooks (rollout captures every block's input).
* when compiling or running a compiled forward fails, the failure is logged once per process and
  that forward runs eager from then on; so does every shape past `max_graphs`.

Compiled functions are shared by every model of the process (one per settings), so the adapters
of a zoo, which share the architecture, reuse the same graphs.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from xai_kedro.core.common.settings import Settings, check_choice
from xai_kedro.core.models.classifier import ViTClassifier

logger = logging.getLogger(__name__)

ENABLED = ("auto", True, False)
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SHAPES = ("bucketed", "static", "dynamic")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class CompileSettings(Settings):
    """Settings of the compiled forwards (parameters `execution.compile` in conf/).

    enabled: "auto" (on for CUDA, off on CPU), true or false.
    mode: the `torch.compile` mode; "reduce-overhead" also captures CUDA graphs.
    backend: the `torch.compile` backend ("inductor"; "eager" / "aot_eager" to debug).
    shapes: "bucketed" (rows padded to buckets, tokens dynamic), "static" (one graph per row
        bucket and token count) or "dynamic" (rows and tokens dynamic, no padding).
    min_rows: the smallest row bucket.
    buckets_per_octave: row buckets per doubling (2: 8, 12, 16, 24, ...; at most a third of a
        bucket is padding).
    max_graphs: distinct shapes one forward may compile; further shapes run eager.
    """

    PATH = "execution.compile"

    enabled: bool | str = "auto"
    mode: str = "default"
    backend: str = "inductor"
    shapes: str = "bucketed"
    min_rows: int = 8
    buckets_per_octave: int = 2
    max_graphs: int = 32

    def __post_init__(self) -> None:
        check_choice(self.enabled, ENABLED, "compile.enabled")
        check_choice(self.mode, MODES, "compile.mode")
        check_choice(self.shapes, SHAPES, "compile.shapes")
        if not isinstance(self.backend, str) or not self.backend:
            raise ValueError(f"compile.backend must name a torch.compile backend: {self.backend!r}")
        for name in ("min_rows", "buckets_per_octave", "max_graphs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"compile.{name} must be >= 1, got {getattr(self, name)}")

    def active_on(self, device: torch.device | str) -> bool:
        """Whether forwards on `device` are compiled: "auto" means on CUDA only."""
        if self.enabled == "auto":
            return torch.device(device).type == "cuda"
        return bool(self.enabled)


def row_bucket(rows: int, min_rows: int, buckets_per_octave: int) -> int:
    """The smallest bucket >= rows: `min_rows`, then `buckets_per_octave` evenly spaced buckets
    per doubling (min_rows 8, 2 per octave: 8, 12, 16, 24, 32, 48, ...)."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    base = min_rows
    while base * 2 < rows:
        base *= 2
    if rows <= base:
        return base
    steps = math.ceil((rows - base) * buckets_per_octave / base)
    return math.ceil(base * (1 + steps / buckets_per_octave))


def _token_logits(model: ViTClassifier, tokens: torch.Tensor) -> torch.Tensor:
    # the class's method, not the instance attribute this module installs (no recursion)
    return type(model).forward_tokens(model, tokens)


def _pixel_logits(model: ViTClassifier, pixel_values: torch.Tensor) -> torch.Tensor:
    # ViTClassifier.forward is forward_tokens(embed(x)); spelled out so the compiled graph does
    # not call back into the compiled `forward_tokens` installed on the instance
    return type(model).forward_tokens(model, model.embed(pixel_values))


class _SharedCompiled:
    """One compiled function for every model of the process, and its once-per-process failure."""

    def __init__(self, fn: Callable, settings: CompileSettings, name: str) -> None:
        self.name = name
        self.settings = settings
        self.failed = False
        self.compiled: Callable | None = None
        try:
            self.compiled = torch.compile(
                fn, backend=settings.backend, mode=_mode_argument(settings), dynamic=False
            )
        except Exception as exc:  # noqa: BLE001 - any failure means: run eager, said once
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        if not self.failed:
            logger.warning(
                "torch.compile of %s failed (%s: %s); it runs eager from now on",
                self.name,
                type(exc).__name__,
                str(exc).splitlines()[0][:300] if str(exc) else "",
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
        self.failed = True


def _mode_argument(settings: CompileSettings) -> str | None:
    if settings.backend != "inductor":
        return None  # modes are inductor options
    return None if settings.mode == "default" else settings.mode


_SHARED: dict[tuple[str, CompileSettings], _SharedCompiled] = {}


def _shared(fn: Callable, settings: CompileSettings, name: str) -> _SharedCompiled:
    key = (name, settings)
    if key not in _SHARED:
        _SHARED[key] = _SharedCompiled(fn, settings, name)
    return _SHARED[key]


def _has_hooks(modules: list[nn.Module]) -> bool:
    """Forward hooks anywhere in the model (or global ones): a graph would not run them."""
    global_hooks = (
        nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks
    )
    return bool(global_hooks) or any(m._forward_hooks or m._forward_pre_hooks for m in modules)


class CompiledForward:
    """A model forward (first argument batched over rows) run through a shared compiled graph."""

    def __init__(
        self, model: ViTClassifier, fn: Callable, settings: CompileSettings, name: str
    ) -> None:
        self.model = model
        self.fn = fn
        self.settings = settings
        self.shared = _shared(fn, settings, name)
        self.modules = list(model.modules())
        self.shapes: set[tuple] = set()
        self.compiled_calls = 0
        self.eager_calls: Counter[str] = Counter()  # reason -> calls that ran eager
        self._over_limit_logged = False

    def eager_reason(self) -> str | None:
        """Why this call must run eager, or None when the compiled graph may run it."""
        if self.shared.failed or self.shared.compiled is None:
            return "compile failed"
        if torch.is_grad_enabled():
            return "autograd"
        if _has_hooks(self.modules):
            return "forward hooks"
        return None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        reason = self.eager_reason()
        if reason is not None:
            return self._eager(x, reason)
        rows = x.shape[0]
        padded = self._pad_rows(x)
        shape_key = self._shape_key(padded)
        if shape_key not in self.shapes and len(self.shapes) >= self.settings.max_graphs:
            if not self._over_limit_logged:
                logger.warning(
                    "%s: more than %d shapes (compile.max_graphs); new shapes run eager",
                    self.shared.name,
                    self.settings.max_graphs,
                )
                self._over_limit_logged = True
            return self._eager(x, "max_graphs")
        self._mark_dynamic(padded)
        try:
            out = self._run_compiled(padded)
        except torch.OutOfMemoryError:
            raise  # the eager forward would not fit either
        except Exception as exc:  # noqa: BLE001 - logged once, then eager: the documented fallback
            self.shared.fail(exc)
            return self._eager(x, "compile failed")
        self.shapes.add(shape_key)
        self.compiled_calls += 1
        out = out[:rows]
        return out.clone() if self._cuda_graphs(x) else out

    def _eager(self, x: torch.Tensor, reason: str) -> torch.Tensor:
        self.eager_calls[reason] += 1
        return self.fn(self.model, x)

    def _run_compiled(self, x: torch.Tensor) -> torch.Tensor:
        if self._cuda_graphs(x):
            torch.compiler.cudagraph_mark_step_begin()
        # each shape is its own cache entry: allow max_graphs of them (plus the size-1
        # specialisations) instead of dynamo's small default
        with torch._dynamo.config.patch(recompile_limit=2 * self.settings.max_graphs):
            return self.shared.compiled(self.model, x)

    def _cuda_graphs(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cuda"
            and self.settings.backend == "inductor"
            and self.settings.mode in CUDA_GRAPH_MODES
        )

    def _pad_rows(self, x: torch.Tensor) -> torch.Tensor:
        if self.settings.shapes == "dynamic":
            return x.contiguous()
        bucket = row_bucket(x.shape[0], self.settings.min_rows, self.settings.buckets_per_octave)
        if bucket == x.shape[0]:
            return x.contiguous()  # a graph is specialised to its input's strides too
        return torch.cat([x, x.new_zeros((bucket - x.shape[0], *x.shape[1:]))])

    def _mark_dynamic(self, x: torch.Tensor) -> None:
        """Rows are dynamic only with `shapes: dynamic`; tokens unless `shapes: static`."""
        if self.settings.shapes == "dynamic":
            torch._dynamo.maybe_mark_dynamic(x, 0)
        if self.shared.name == "forward_tokens" and self.settings.shapes != "static":
            torch._dynamo.maybe_mark_dynamic(x, 1)

    def _shape_key(self, x: torch.Tensor) -> tuple:
        rows: int | str = "any" if self.settings.shapes == "dynamic" else x.shape[0]
        if self.shared.name == "forward_tokens" and self.settings.shapes != "static":
            # one token, or the prefix alone (the pooled mean of no patch), is specialised apart
            tokens: int | str = x.shape[1] if x.shape[1] <= self.model.n_prefix else "any"
            rest: tuple = (tokens, *x.shape[2:])
        else:
            rest = tuple(x.shape[1:])
        autocast = torch.is_autocast_enabled(x.device.type)
        return (rows, rest, x.dtype, x.device, autocast, torch.is_inference_mode_enabled())


def is_compiled(model: nn.Module) -> bool:
    """Whether `compile_forwards` has installed compiled forwards on this model."""
    return isinstance(model.__dict__.get("forward_tokens"), CompiledForward)


def compile_forwards(
    model: ViTClassifier,
    settings: CompileSettings | Mapping[str, Any] | None = None,
    device: torch.device | str | None = None,
) -> ViTClassifier:
    """Install compiled `forward_tokens` and `forward` on `model` (in place) and return it.

    Nothing changes when the settings are off for `device` (default: the model's parameters'
    device) or the model is compiled already. The model must be in eval mode: the graphs are
    inference graphs.
    """
    settings = CompileSettings.from_params(settings)
    if device is None:
        device = next(model.parameters()).device
    if not settings.active_on(device) or is_compiled(model):
        return model
    if model.training:
        raise ValueError("compile_forwards needs the model in eval mode (call model.eval())")
    model.forward_tokens = CompiledForward(model, _token_logits, settings, "forward_tokens")
    model.forward = CompiledForward(model, _pixel_logits, settings, "forward")
    logger.info(
        "compiled forwards (%s, mode %s, shapes %s) on %s",
        settings.backend,
        settings.mode,
        settings.shapes,
        torch.device(device),
    )
    return model
