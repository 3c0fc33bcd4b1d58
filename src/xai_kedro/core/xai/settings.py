"""Settings of the XAI stage (parameters `xai_silver.engine` in conf/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xai_kedro.core.common.settings import Settings, check_choice
from xai_kedro.core.xai.explainers import get_explainer

PERTURBATIONS = ("token_drop", "pixel")
PIXEL_BASELINES = ("mean", "blur")
TARGETS = ("label", "predicted")
# What the curves score when no patch is left: the image's own blurred copy (default), or the
# sequence of CLS + registers alone, which is the same input for every image (a class-dependent
# constant shared by all images; kept only to reproduce the earlier, biased endpoint).
EMPTY_INPUTS = ("blur", "prefix_only")


@dataclass(frozen=True)
class XAIConfig(Settings):
    """Settings of the XAI stage (parameters `xai_silver.engine` in conf/).

    steps: K, the curves have K+1 points; step k removes/reveals n_k = round(k N / K) patches
        and the areas are taken over the true fraction n_k / N.
    perturbation: "token_drop" (removed patches leave the sequence) or "pixel" (RISE-style).
    pixel_baseline: "mean" (dataset mean colour, 0 after normalisation) or "blur".
    blur_sigma: Gaussian sigma in pixels at model input resolution (blur baseline and the
        blurred empty input).
    blur_truncate: the blur kernel radius is ceil(blur_truncate * blur_sigma).
    empty_input: what the step with no patch left scores (EMPTY_INPUTS; "blur" by default).
    target: "predicted" (clean prediction, label-free, as in RISE; default) or "label" (true
        class: an analysis option whose curve features carry the label).
    explainer: a key of the explainer registry (`core.xai.explainers`).
    explainer_settings: that explainer's settings (omitted ones take their defaults).
    batch_size: images per chunk (all their perturbation steps are batched together).
    max_batch_tokens: token budget of one perturbation forward (rows x sequence length).
    keep_heatmap: also return each heatmap (float32 array per row).
    input_size: model input resolution; None = the backbone's configured image size.
    """

    PATH = "xai_silver.engine"

    steps: int = 16
    perturbation: str = "token_drop"
    pixel_baseline: str = "mean"
    blur_sigma: float = 5.0
    blur_truncate: float = 3.0
    empty_input: str = "blur"
    target: str = "predicted"
    explainer: str = "attention"
    explainer_settings: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    max_batch_tokens: int = 262_144
    keep_heatmap: bool = False
    input_size: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        check_choice(self.perturbation, PERTURBATIONS, "perturbation")
        check_choice(self.pixel_baseline, PIXEL_BASELINES, "pixel_baseline")
        check_choice(self.empty_input, EMPTY_INPUTS, "empty_input")
        check_choice(self.target, TARGETS, "target")
        get_explainer(self.explainer, **self.explainer_settings)
        if self.blur_sigma <= 0 or self.blur_truncate <= 0:
            raise ValueError("blur_sigma and blur_truncate must be > 0")
        if self.batch_size < 1 or self.max_batch_tokens < 1:
            raise ValueError("batch_size and max_batch_tokens must be >= 1")
