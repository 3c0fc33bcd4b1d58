"""What to deploy: the adapter the selection table supports and the best label-free predictor.

Adapter (`choose_adapter`, rule `deploy.selection.rule`):
- ``auto`` (default): on the pooled shift (``all``), the label-free method whose pick beats the
  clean-accuracy pick with an interval above 0 (the largest gain; ties: lower regret, then table
  order); when no method's gain is supported, the practitioner's default, the clean validation
  accuracy pick. The reason says which and why.
- a method name of `adapter_selection` (``clean_accuracy``, ``meta_regressor``, ``doc``...):
  that method's pick.
- ``adapter:<id>``: that adapter, whatever the table says.

Failure predictor (`choose_predictor`): among the `classifier_comparison` rows whose features
are all label-free (XAI metrics of the clean prediction and confidence: never the object mask),
the highest image-grouped out-of-fold AUC (``grouped_oof_auc``: no image on both sides of a
fold), optionally restricted to one model or feature set; then refitted on every meta row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters.estimation import OVERALL
from xai_kedro.core.meta.adapters.selection import CLEAN_SELECTION
from xai_kedro.core.meta.prediction.features import (
    CONFIDENCE_FEATURES,
    TARGET,
    XAI_FEATURES,
    require_columns,
)
from xai_kedro.core.meta.prediction.learners import make_model
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings

logger = logging.getLogger(__name__)

AUTO = "auto"
ADAPTER_PREFIX = "adapter:"
LABEL_FREE_FEATURES = frozenset((*XAI_FEATURES, *CONFIDENCE_FEATURES))


@dataclass(frozen=True)
class AdapterChoice:
    """The adapter to deploy, the selection method behind it and why."""

    adapter_id: str
    method: str
    shift: str
    reason: str


@dataclass(frozen=True)
class PredictorChoice:
    """The meta-learner (model x feature set) to deploy as the failure predictor and why."""

    model: str
    feature_set: str
    features: tuple[str, ...]
    grouped_oof_auc: float
    reason: str


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _supported_method(rows: pd.DataFrame) -> pd.Series | None:
    """The label-free method with the largest gain over the clean pick whose interval is > 0."""
    candidates = rows[
        (rows["method"] != CLEAN_SELECTION)
        & rows["picked_adapter"].notna()
        & (pd.to_numeric(rows["gain_vs_clean_ci_low"], errors="coerce") > 0)
    ]
    if candidates.empty:
        return None
    order = candidates.assign(_order=np.arange(len(candidates))).sort_values(
        ["gain_vs_clean_points", "regret_points", "_order"],
        ascending=[False, True, True],
        kind="stable",
    )
    return order.iloc[0]


def choose_adapter(
    selection: pd.DataFrame, rule: str = AUTO, shift: str = OVERALL
) -> AdapterChoice:
    """The adapter to deploy by `rule` on `shift` of `adapter_selection` (see module doc)."""
    if rule.startswith(ADAPTER_PREFIX):
        adapter = rule[len(ADAPTER_PREFIX) :]
        return AdapterChoice(adapter, "explicit", shift, f"named by the rule {rule!r}")
    require_columns(selection, ["method", "shift", "picked_adapter"], "adapter_selection")
    rows = selection[selection["shift"] == shift]
    if rows.empty:
        shifts = sorted(selection["shift"].dropna().unique())
        raise ValueError(f"adapter_selection has no rows for shift {shift!r}; it has {shifts}")
    if rule == AUTO:
        best = _supported_method(rows)
        if best is not None:
            reason = (
                f"auto: {best['method']} picks it and gains {best['gain_vs_clean_points']:.2f} "
                f"points of OOD accuracy over the clean-accuracy pick (interval low "
                f"{best['gain_vs_clean_ci_low']:.2f} > 0, regret {best['regret_points']:.2f})"
            )
            return AdapterChoice(str(best["picked_adapter"]), str(best["method"]), shift, reason)
        rule = CLEAN_SELECTION
        why = (
            "auto: no label-free method's gain over the clean-accuracy pick has an interval "
            "above 0, so the practitioner's default: the best clean validation accuracy"
        )
    else:
        why = f"the configured rule {rule!r}"
    match = rows[rows["method"] == rule]
    if match.empty or not isinstance(match["picked_adapter"].iloc[0], str):
        known = ", ".join(rows.loc[rows["picked_adapter"].notna(), "method"].astype(str))
        raise ValueError(
            f"deploy.selection.rule: {rule!r} picks no adapter on shift {shift!r}; methods "
            f"with a pick: {known}; or 'auto', or 'adapter:<id>'"
        )
    return AdapterChoice(str(match["picked_adapter"].iloc[0]), rule, shift, why)


def _label_free_rows(comparison: pd.DataFrame) -> pd.DataFrame:
    require_columns(comparison, ["model", "feature_set", "features", "grouped_oof_auc"], "table")
    features = comparison["features"].fillna("").astype(str).str.split(",")
    label_free = features.map(lambda fs: bool(fs) and all(f in LABEL_FREE_FEATURES for f in fs))
    return comparison[label_free & (comparison["features"].fillna("") != "")]


def choose_predictor(
    comparison: pd.DataFrame, model: str = AUTO, feature_set: str = AUTO
) -> PredictorChoice:
    """The best label-free meta-learner of `classifier_comparison` (see module doc)."""
    rows = _label_free_rows(comparison)
    if model != AUTO:
        rows = rows[rows["model"] == model]
    if feature_set != AUTO:
        rows = rows[rows["feature_set"] == feature_set]
    if rows.empty:
        raise ValueError(
            f"deploy.predictor: no label-free classifier_comparison row for model {model!r} "
            f"and feature set {feature_set!r}; rows: "
            f"{sorted(set(zip(comparison['model'], comparison['feature_set'], strict=True)))}"
        )
    auc = pd.to_numeric(rows["grouped_oof_auc"], errors="coerce")
    if auc.notna().any():
        best = rows.loc[auc.idxmax()]  # first of the maximum: table order breaks ties
        reason = (
            f"highest image-grouped out-of-fold AUC among {len(rows)} label-free "
            f"(model, feature set) rows: {float(best['grouped_oof_auc']):.3f}"
        )
    else:
        best = rows.iloc[0]
        reason = "no grouped AUC is finite (degenerate target): the first label-free row"
    features = tuple(str(best["features"]).split(","))
    auc_value = float(best["grouped_oof_auc"]) if _finite(best["grouped_oof_auc"]) else math.nan
    return PredictorChoice(
        str(best["model"]), str(best["feature_set"]), features, auc_value, reason
    )


def fit_predictor(
    meta_df: pd.DataFrame,
    choice: PredictorChoice,
    settings: MetaLearnerSettings,
    seed: int,
) -> tuple[Any, str]:
    """The chosen model refitted on every meta row (the comparison's hyperparameters and seed):
    the fitted scaler + estimator pipeline and its estimator kind (a `LEARNERS` name)."""
    features: Sequence[str] = list(choice.features)
    require_columns(meta_df, [*features, TARGET], "meta dataset")
    hyperparameters = settings.models[choice.model]
    y = meta_df[TARGET].to_numpy(dtype=bool).astype(int)
    if np.unique(y).size < 2:
        raise ValueError(
            f"the failure predictor needs correct and wrong OOD rows; all {y.size} are "
            f"{'correct' if y.all() else 'wrong'}"
        )
    X = meta_df[features].to_numpy(dtype=float)
    pipeline = make_model(choice.model, hyperparameters, seed, settings.n_jobs).fit(X, y)
    logger.info(
        "Failure predictor: %s on %s (%d features) refitted on %d meta rows; %s",
        choice.model,
        choice.feature_set,
        len(features),
        len(y),
        choice.reason,
    )
    return pipeline, str(hyperparameters["estimator"])
