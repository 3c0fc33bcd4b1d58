"""Settings of the per-adapter accuracy estimation (`meta_learning.accuracy_estimation`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xai_kedro.core.common.registry import UnknownNameError
from xai_kedro.core.common.settings import Settings, SettingsError
from xai_kedro.core.meta.adapters.estimators import ESTIMATORS
from xai_kedro.core.meta.stats.bootstrap import BootstrapOptions

# the framework names the model (RandomForest regressor) but no hyperparameters
DEFAULT_REGRESSOR: dict[str, Any] = {"n_estimators": 200, "min_samples_leaf": 1}


@dataclass(frozen=True)
class EstimationSettings(BootstrapOptions, Settings):
    """Settings of the meta-regressor, the label-free estimators and their summary.

    regressor: RandomForestRegressor hyperparameters, merged key by key over DEFAULT_REGRESSOR.
    percentiles: per-adapter feature percentiles (plus mean and std) of the profile.
    min_adapters: below this the regressors and agreement-on-the-line are NaN.
    estimators: label-free estimators to run (names in `estimators.ESTIMATORS`).
    family_pattern: removed from adapter_id to name its config family (the seeds of one
        config): `_s0`.
    clean_shift: corruption name of the unshifted rows of silver_source.
    n_bootstrap / ci_alpha: replicates and level of the intervals over adapters.
    aline_clip: agreement / accuracy rates are clipped to [c, 1 - c] before the probit.
    exclude_target_corruption: nuclear norm / MaNo calibrate a target corruption on source
        shifts of other corruptions only.
    """

    PATH = "meta_learning.accuracy_estimation"

    regressor: Mapping[str, Any] = field(default_factory=dict)
    percentiles: tuple[float, ...] = (10, 50, 90)
    min_adapters: int = 3
    n_jobs: int = 1
    estimators: tuple[str, ...] = field(default_factory=lambda: ESTIMATORS.names())
    family_pattern: str = r"_s[0-9]+(?=_|$)"
    clean_shift: str = "clean"
    n_bootstrap: int = 1000
    ci_alpha: float = 0.05
    aline_clip: float = 0.001
    exclude_target_corruption: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "regressor", {**DEFAULT_REGRESSOR, **(self.regressor or {})})
        object.__setattr__(self, "percentiles", tuple(self.percentiles))
        object.__setattr__(self, "estimators", tuple(self.estimators))
        for name in self.estimators:
            try:
                ESTIMATORS.get(name)  # an unknown name fails here, naming the known ones
            except UnknownNameError as exc:
                raise SettingsError(str(exc)) from None
