"""Settings of the monitor pipeline (parameters `monitor` in conf/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from xai_kedro.core.common.registry import UnknownNameError
from xai_kedro.core.deploy.settings import FolderRunSettings
from xai_kedro.core.meta.adapters.estimators import ESTIMATORS


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
    """

    PATH = "monitor"

    estimators: tuple[str, ...] = field(default_factory=lambda: ESTIMATORS.names())
    clean_shift: str = "clean"
    reference_size: int = 500
    batch_size_cap: int = 1000
    n_permutations: int = 500
    alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
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
