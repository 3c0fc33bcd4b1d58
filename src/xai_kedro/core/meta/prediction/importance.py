"""The reference experiment's importance table: XGBoost gain, RandomForest impurity, permutation
importance and logistic-regression coefficients on the same holdout split."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from xai_kedro.core.meta.prediction.comparison import _check_features, _holdout_split
from xai_kedro.core.meta.prediction.features import TARGET, XAI_SET, default_feature_sets
from xai_kedro.core.meta.prediction.learners import make_model
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings

logger = logging.getLogger(__name__)

IMPORTANCE_COLUMNS = (
    "feature",
    "xgb_importance",
    "rf_importance",
    "perm_importance",
    "perm_std",
    "lr_coef",
    "lr_odds_ratio",
)


def _xgb_gain(est: Pipeline, n_features: int) -> np.ndarray:
    """XGBoost gain importance per input column, normalised to sum 1 (unused features = 0)."""
    gain = est.named_steps["clf"].get_booster().get_score(importance_type="gain")
    vec = np.array([gain.get(f"f{i}", 0.0) for i in range(n_features)], dtype=float)
    total = vec.sum()
    return vec / total if total > 0 else np.full(n_features, np.nan)


def feature_importance(
    meta_df: pd.DataFrame,
    features: Sequence[str] | None = None,
    settings: MetaLearnerSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The reference experiment's importance table on the same stratified 80/20 split as compare_classifiers.

    xgb_importance: XGBoost (the "XGBoost" model) gain, normalised to sum 1; rf_importance:
    RandomForest impurity importance; perm_importance/perm_std: sklearn permutation importance
    of ``permutation_model`` on the test split, scored by ``permutation_scoring`` (the reference experiment:
    accuracy drop); lr_coef/lr_odds_ratio: LogisticRegression coefficient on standardised
    features and exp(coef). Sorted by perm_importance, as in the reference experiment.
    """
    p = settings or MetaLearnerSettings()
    if features is None:
        features = default_feature_sets(meta_df, p.include_object_share)[XAI_SET]
    feats = list(features)
    X = _check_features(meta_df, feats, "importance")
    y = meta_df[TARGET].to_numpy(dtype=bool).astype(int)
    out = pd.DataFrame({"feature": feats})
    for col in IMPORTANCE_COLUMNS[1:]:
        out[col] = np.nan
    split = _holdout_split(y, p.test_size, seed, "feature_importance")
    if split is None:
        return out
    tr, te = split
    fitted: dict[str, Pipeline] = {}

    def fit(name: str) -> Pipeline:
        if name not in p.models:
            raise ValueError(f"feature_importance needs a model named {name!r} in {p.PATH}.models")
        if name not in fitted:
            fitted[name] = make_model(name, p.models[name], seed, p.n_jobs).fit(X[tr], y[tr])
        return fitted[name]

    out["xgb_importance"] = _xgb_gain(fit("XGBoost"), len(feats))
    out["rf_importance"] = fit("RandomForest").named_steps["clf"].feature_importances_
    coef = fit("LogisticRegression").named_steps["clf"].coef_[0]
    out["lr_coef"] = coef
    out["lr_odds_ratio"] = np.exp(coef)
    if np.unique(y[te]).size < 2 and p.permutation_scoring == "roc_auc":
        logger.warning("feature_importance: test split has one class; permutation AUC is NaN")
    else:
        perm = permutation_importance(
            fit(p.permutation_model),
            X[te],
            y[te],
            scoring=p.permutation_scoring,
            n_repeats=int(p.permutation_repeats),
            random_state=seed,
            n_jobs=p.n_jobs,
        )
        out["perm_importance"] = perm.importances_mean
        out["perm_std"] = perm.importances_std
    return out.sort_values("perm_importance", ascending=False, kind="stable").reset_index(drop=True)
