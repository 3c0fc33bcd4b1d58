"""Settings of the monitor pipeline (parameters `monitor` in conf/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xai_kedro.core.common.registry import UnknownNameError
from xai_kedro.core.common.settings import Settings
from xai_kedro.core.deploy.settings import FolderRunSettings
from xai_kedro.core.meta.adapters.estimators import ESTIMATORS


@dataclass(frozen=True)
class MonitorEvaluationSettings(Settings):
    """The `monitor.evaluation` block: the monitor measured on batches the project makes from
    the held-out test images (the Gold table `monitor_evaluation`, written after `deploy`).

    enabled: off by default (it profiles every test image under every condition: minutes).
    sizes / batches: batch sizes and seeded batches per (size, condition); a size over the test
        split is drawn with replacement, except sizes >= ``large`` (skipped then).
    families: shift families kept (empty: clean, the reference grid and every `ood.shifts` one).
    max_images: cap on the test split (0: all). n_permutations / alpha / reference_size: the
        MMD test (reference: a seeded sample of non-test Bronze embeddings).
    regressor_batches / regressor_batch_size: the per-batch regressor's training batches per
        source condition (`ood.source_shifts` on the validation split) and their size.
    """

    PATH = "monitor.evaluation"

    enabled: bool = False
    sizes: tuple[int, ...] = (50, 200, 1000)
    large: int = 1000
    batches: int = 5
    families: tuple[str, ...] = ()
    max_images: int = 0
    n_permutations: int = 200
    alpha: float = 0.05
    reference_size: int = 500
    regressor_batches: int = 20
    regressor_batch_size: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        object.__setattr__(self, "families", tuple(self.families))
        if not self.sizes or min(self.sizes) < 2:
            raise ValueError("sizes must hold batch sizes >= 2")
        if min(self.batches, self.n_permutations, self.regressor_batches) < 1:
            raise ValueError("batches, n_permutations and regressor_batches must be >= 1")
        if min(self.reference_size, self.regressor_batch_size) < 2 or self.max_images < 0:
            raise ValueError("reference_size, regressor_batch_size >= 2; max_images >= 0")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")


@dataclass(frozen=True)
class MonitorSettings(FolderRunSettings):
    """The `monitor` block.

    source: the unlabeled folder, an ingestion source (kind + root), as `scoring.source`.
    model_uri / model_dir: the model (null: the one the deploy pipeline registered) and the local
        copy the Spark workers load (required: conf/ places it under the env's data_root).
    estimators: label-free estimators to run (names in `ESTIMATORS`); the CBPE-style anchor and
        the failure predictor's mean risk are always reported.
    clean_shift: corruption name of the clean rows of `silver_source` (the calibration split).
    reference_size / batch_size_cap: rows of `bronze_embeddings` (seeded sample) and of the batch
        in the MMD test; n_permutations / alpha: its permutations and level.
    evaluation: the `monitor.evaluation` block (`MonitorEvaluationSettings`), read by the deploy
        pipeline's evaluation node, not by the monitor run.
    """

    PATH = "monitor"

    estimators: tuple[str, ...] = field(default_factory=lambda: ESTIMATORS.names())
    clean_shift: str = "clean"
    reference_size: int = 500
    batch_size_cap: int = 1000
    n_permutations: int = 500
    alpha: float = 0.05
    seed: int = 0
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        MonitorEvaluationSettings.from_params(self.evaluation)  # a typo fails in either run
        if self.n_permutations <= 0:
            raise ValueError("n_permutations must be > 0")
        if min(self.reference_size, self.batch_size_cap) < 2 or not 0 < self.alpha < 1:
            raise ValueError("reference_size and batch_size_cap must be >= 2, alpha in (0, 1)")
        object.__setattr__(self, "estimators", tuple(self.estimators))
        for name in self.estimators:
            try:
                ESTIMATORS.get(name)
            except UnknownNameError as exc:
                reason = str(exc).split(": ", 1)[-1]  # without the Gold table's setting name
                raise ValueError(f"estimators: {reason}") from None
