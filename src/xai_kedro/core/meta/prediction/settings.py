"""Settings of the per-sample meta-learners (parameters `meta_learning.meta_learners` in conf/)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.meta.prediction.features import CONFIDENCE_SET
from xai_kedro.core.meta.prediction.learners import DEFAULT_MODELS
from xai_kedro.core.meta.stats.bootstrap import BootstrapOptions


def _merged_models(models: Mapping[str, Mapping[str, Any] | None] | None) -> dict[str, dict]:
    """The reference models with ``models`` laid over them key by key (a model's omitted
    hyperparameters keep their reference values; a new name adds a model)."""
    out = copy.deepcopy(DEFAULT_MODELS)
    for name, hp in (models or {}).items():
        out[name] = {**out.get(name, {}), **(hp or {})}
    return out


@dataclass(frozen=True)
class MetaLearnerSettings(BootstrapOptions, Settings):
    """Settings of the per-sample meta-learners; the defaults are the reference experiment's.

    models: name -> hyperparameters (with `estimator`, a `LEARNERS` name), merged key by key
        over the reference models (`learners.DEFAULT_MODELS`).
    model_names: which models `compare_classifiers` runs, in order.
    test_size: holdout share of the stratified split (the reference: 80/20).
    cv_folds: folds of the stratified CV (the reference: 5), also used for the grouped CV.
    n_bootstrap / ci_alpha: replicates and level of every interval (95 %).
    n_jobs: threads per model fit; 1 keeps Spark/Kedro runners from oversubscribing.
    permutation_repeats / permutation_scoring / permutation_model: the permutation importance
        (the reference: "drop in accuracy when feature is shuffled"; "roc_auc" is also accepted
        and is threshold-free; the reference names no model, RandomForest is our choice).
    baseline_feature_set: the set AUC gains are reported against.
    include_object_share: also fit an analysis-only set with the object-mask feature.
    """

    PATH = "meta_learning.meta_learners"

    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    model_names: tuple[str, ...] = tuple(DEFAULT_MODELS)
    test_size: float = 0.2
    cv_folds: int = 5
    n_bootstrap: int = 1000
    ci_alpha: float = 0.05
    n_jobs: int = 1
    permutation_repeats: int = 10
    permutation_scoring: str = "accuracy"
    permutation_model: str = "RandomForest"
    baseline_feature_set: str = CONFIDENCE_SET
    include_object_share: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", _merged_models(self.models))
        object.__setattr__(self, "model_names", tuple(self.model_names or ()))
        if not self.model_names:
            raise ValueError("model_names must name at least one model")
        missing = [m for m in self.model_names if m not in self.models]
        if missing:
            raise ValueError(f"model_names {missing} have no entry under 'models'")
