"""Per-sample meta-learners compared on feature sets: the reference protocol and the grouped one.

The four models and their hyperparameters are the reference experiment's (`MetaLearnerSettings`;
``conf/`` may override them). Beside the reference protocol (80/20 stratified split + 5-fold StratifiedKFold, which
lets one image sit in train and test under different corruptions/adapters), every run also
reports 5-fold StratifiedGroupKFold by image_id and a confidence-only baseline, so the Gold layer
can say what the XAI features add and whether the reference protocol leaks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.model_selection import (
    GroupKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import Pipeline

from xai_kedro.core.meta.prediction.features import (
    GROUP,
    TARGET,
    default_feature_sets,
    require_columns,
)
from xai_kedro.core.meta.prediction.learners import make_model
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings
from xai_kedro.core.meta.stats.association import roc_auc
from xai_kedro.core.meta.stats.bootstrap import Resampling, bootstrap_auc_ci

logger = logging.getLogger(__name__)

SEED_COLUMNS = (
    "model",
    "accuracy",
    "roc_auc",
    "f1",
    "precision",
    "recall",
    "cv_auc_mean",
    "cv_auc_std",
)
EXTRA_COLUMNS = (
    "feature_set",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "grouped_cv_auc_mean",
    "grouped_cv_auc_std",
    "grouped_oof_auc",
    "grouped_oof_auc_ci_low",
    "grouped_oof_auc_ci_high",
    "baseline_feature_set",
    "auc_gain_vs_baseline",
    "auc_gain_ci_low",
    "auc_gain_ci_high",
    "n_train",
    "n_test",
    "n_features",
    "features",
    "cv_scheme",
)
COMPARISON_COLUMNS = SEED_COLUMNS + EXTRA_COLUMNS
SCORE_COLUMNS = ("feature_set", "model", "split", "row", "image_id", "y_true", "y_score")


def grouped_folds(
    groups: Any, n_splits: int = 5, y: Any = None, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds (train_idx, test_idx) in which no group (image) is on both sides.

    With ``y`` the folds are also stratified (StratifiedGroupKFold), else GroupKFold.
    """
    groups = np.asarray(groups)
    n_groups = pd.unique(groups).size
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    if n_groups < n_splits:
        raise ValueError(f"need at least n_splits={n_splits} distinct groups, got {n_groups}")
    dummy = np.zeros((groups.size, 1))
    if y is None:
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in splitter.split(dummy, groups=groups)]
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(dummy, np.asarray(y), groups=groups)]


def _proba(est: Pipeline, X: np.ndarray) -> np.ndarray:
    return est.predict_proba(X)[:, 1]


def _cv_auc(
    make: Any, X: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, float, np.ndarray]:
    """Fold AUC mean/std (nan-aware) and the out-of-fold scores."""
    aucs, oof = [], np.full(y.size, np.nan)
    for tr, te in folds:
        est = make().fit(X[tr], y[tr])
        oof[te] = _proba(est, X[te])
        aucs.append(roc_auc(y[te], oof[te]))
    arr = np.asarray(aucs, dtype=float)
    if np.isnan(arr).any():
        n_bad = int(np.isnan(arr).sum())
        logger.warning(
            "%d of %d CV folds had a single class; their AUC is skipped", n_bad, arr.size
        )
    if np.isnan(arr).all():
        return float("nan"), float("nan"), oof
    return float(np.nanmean(arr)), float(np.nanstd(arr)), oof


def _holdout_split(
    y: np.ndarray, test_size: float, seed: int, caller: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """The reference experiment's stratified train/test split, or None (logged) when the target is degenerate
    (all correct, all wrong, or too few of one class to put some on both sides)."""
    minority = int(min(y.sum(), y.size - y.sum())) if y.size else 0
    if minority >= 2:
        try:
            idx = np.arange(y.size)
            tr, te = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
            return tr, te
        except ValueError as exc:
            reason = str(exc)
    else:
        reason = f"{minority} rows in the minority class"
    logger.warning("%s: degenerate target (%d rows; %s); results are NaN", caller, y.size, reason)
    return None


def _nan_row(model: str, set_name: str, feats: list[str], baseline: str, scheme: str) -> dict:
    row: dict[str, Any] = dict.fromkeys(COMPARISON_COLUMNS, float("nan"))
    row.update(
        model=model,
        feature_set=set_name,
        baseline_feature_set=baseline,
        n_features=len(feats),
        features=",".join(feats),
        cv_scheme=scheme,
    )
    return row


def _check_features(meta_df: pd.DataFrame, feats: list[str], set_name: str) -> np.ndarray:
    require_columns(meta_df, feats, f"meta dataset (feature set {set_name!r})")
    X = meta_df[feats].to_numpy(dtype=float)
    bad = [f for f, col in zip(feats, X.T, strict=True) if not np.isfinite(col).all()]
    if bad:
        raise ValueError(f"feature set {set_name!r}: features {bad} contain NaN/inf values")
    return X


@dataclass(frozen=True)
class _Protocol:
    """What every (feature set, model) of one comparison shares, so the comparisons are paired:
    the target, the image groups, the holdout split, the folds and the interval settings."""

    y: np.ndarray
    groups: np.ndarray
    train: np.ndarray
    test: np.ndarray
    cv_folds: list[tuple[np.ndarray, np.ndarray]] | None
    grouped_cv: list[tuple[np.ndarray, np.ndarray]] | None
    boot: Resampling
    baseline: str
    scheme: str
    seed: int
    n_jobs: int


def _checked_sets(
    meta_df: pd.DataFrame,
    feature_sets: Mapping[str, Sequence[str]] | None,
    settings: MetaLearnerSettings,
) -> dict[str, list[str]]:
    """The feature sets to compare (default: the deployable ones), each a non-empty list."""
    if feature_sets is None:
        feature_sets = default_feature_sets(meta_df, settings.include_object_share)
    sets = {name: list(feats) for name, feats in feature_sets.items()}
    if not sets or not all(sets.values()):
        raise ValueError(f"feature_sets must be non-empty lists of columns, got {sets}")
    return sets


def _cv_splits(
    y: np.ndarray, groups: np.ndarray, k: int, seed: int
) -> tuple[list | None, list | None]:
    """Row-level StratifiedKFold and image-grouped folds; None (logged) where impossible."""
    cv_folds = grouped_cv = None
    try:
        idx = np.arange(y.size)
        cv_folds = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, y))
    except ValueError as exc:
        logger.warning("StratifiedKFold impossible (%s); cv_auc is NaN", exc)
    try:
        grouped_cv = grouped_folds(groups, k, y, seed)
    except ValueError as exc:
        logger.warning("grouped CV impossible (%s); grouped metrics are NaN", exc)
    return cv_folds, grouped_cv


def _protocol(
    y: np.ndarray,
    groups: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    settings: MetaLearnerSettings,
    scheme: str,
    seed: int,
) -> _Protocol:
    cv_folds, grouped_cv = _cv_splits(y, groups, int(settings.cv_folds), seed)
    return _Protocol(
        y=y,
        groups=groups,
        train=split[0],
        test=split[1],
        cv_folds=cv_folds,
        grouped_cv=grouped_cv,
        boot=settings.resampling(seed),
        baseline=settings.baseline_feature_set,
        scheme=scheme,
        seed=seed,
        n_jobs=settings.n_jobs,
    )


def _holdout_metrics(
    proto: _Protocol, est: Pipeline, X: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """The reference metrics of a fitted model on the holdout rows, and its test scores."""
    y, te = proto.y, proto.test
    score = _proba(est, X[te])
    pred = est.predict(X[te])
    metrics = {
        "accuracy": accuracy_score(y[te], pred),
        "roc_auc": roc_auc(y[te], score),
        "f1": f1_score(y[te], pred, zero_division=0),
        "precision": precision_score(y[te], pred, zero_division=0),
        "recall": recall_score(y[te], pred, zero_division=0),
        "n_train": proto.train.size,
        "n_test": te.size,
    }
    low, high = bootstrap_auc_ci(y[te], score, resampling=proto.boot, groups=proto.groups[te])
    return {**metrics, "roc_auc_ci_low": low, "roc_auc_ci_high": high}, score


def _fit_and_score(
    proto: _Protocol,
    X: np.ndarray,
    set_name: str,
    feats: list[str],
    model_name: str,
    hp: Mapping[str, Any],
) -> tuple[dict[str, Any], list[pd.DataFrame], np.ndarray | None]:
    """One (feature set, model): holdout fit, row CV, grouped CV; its row, its score frames
    and its grouped out-of-fold scores (None when the grouped CV is impossible)."""
    y, groups = proto.y, proto.groups

    def make() -> Pipeline:
        return make_model(model_name, hp, proto.seed, proto.n_jobs)

    row = _nan_row(model_name, set_name, feats, proto.baseline, proto.scheme)
    metrics, score = _holdout_metrics(proto, make().fit(X[proto.train], y[proto.train]), X)
    row.update(metrics)
    parts = [_score_frame(set_name, model_name, "test", proto.test, groups, y, score)]
    if proto.cv_folds is not None:
        row["cv_auc_mean"], row["cv_auc_std"], _ = _cv_auc(make, X, y, proto.cv_folds)
    oof = None
    if proto.grouped_cv is not None:
        mean, std, oof = _cv_auc(make, X, y, proto.grouped_cv)
        row["grouped_cv_auc_mean"], row["grouped_cv_auc_std"] = mean, std
        row["grouped_oof_auc"] = roc_auc(y, oof)
        row["grouped_oof_auc_ci_low"], row["grouped_oof_auc_ci_high"] = bootstrap_auc_ci(
            y, oof, resampling=proto.boot, groups=groups
        )
        idx = np.arange(y.size)
        parts.append(_score_frame(set_name, model_name, "grouped_oof", idx, groups, y, oof))
    logger.info(
        "meta-learner %s on %s: holdout AUC %.3f, grouped CV AUC %.3f",
        model_name,
        set_name,
        row["roc_auc"],
        row["grouped_cv_auc_mean"],
    )
    return row, parts, oof


def _fit_all(
    proto: _Protocol,
    sets: Mapping[str, list[str]],
    X_by_set: Mapping[str, np.ndarray],
    settings: MetaLearnerSettings,
) -> tuple[list[dict[str, Any]], list[pd.DataFrame], dict[tuple[str, str], np.ndarray]]:
    """Every feature set x model in order: rows, score frames and grouped out-of-fold scores."""
    rows, score_parts, oof_scores = [], [], {}
    for set_name, feats in sets.items():
        for model_name in settings.model_names:
            row, parts, oof = _fit_and_score(
                proto, X_by_set[set_name], set_name, feats, model_name, settings.models[model_name]
            )
            rows.append(row)
            score_parts += parts
            if oof is not None:
                oof_scores[(set_name, model_name)] = oof
    return rows, score_parts, oof_scores


def _add_gains(
    rows: list[dict[str, Any]], oof_scores: Mapping[tuple[str, str], np.ndarray], proto: _Protocol
) -> None:
    """Grouped OOF AUC of each set minus the baseline set's (same model), paired interval."""
    y = proto.y
    for row in rows:
        base = oof_scores.get((proto.baseline, row["model"]))
        ext = oof_scores.get((row["feature_set"], row["model"]))
        if base is None or ext is None or row["feature_set"] == proto.baseline:
            continue
        row["auc_gain_vs_baseline"] = roc_auc(y, ext) - roc_auc(y, base)
        row["auc_gain_ci_low"], row["auc_gain_ci_high"] = bootstrap_auc_ci(
            y, ext, base, resampling=proto.boot, groups=proto.groups
        )


def compare_classifiers(
    meta_df: pd.DataFrame,
    feature_sets: Mapping[str, Sequence[str]] | None = None,
    settings: MetaLearnerSettings | None = None,
    seed: int = 0,
    return_scores: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Every feature set x model: reference metrics plus grouped CV, bootstrap CIs and AUC gains.

    - holdout (the reference experiment): stratified 80/20 split; accuracy/precision/recall/f1 at the model's
      default threshold, ROC-AUC with a 95 % cluster-bootstrap CI (images resampled);
    - ``cv_auc_*``: 5-fold StratifiedKFold over rows (the reference experiment's protocol; leaks images);
    - ``grouped_cv_auc_*``: 5-fold StratifiedGroupKFold by image_id; ``grouped_oof_auc`` is
      the AUC of the pooled out-of-fold scores with a cluster-bootstrap CI;
    - ``auc_gain_vs_baseline``: grouped OOF AUC of this set minus that of the baseline set
      (same model), with a paired cluster-bootstrap CI.
    The split and folds are shared by all sets and models, so the comparisons are paired.
    With ``return_scores`` also returns the test-set and grouped out-of-fold scores (long form).
    """
    p = settings or MetaLearnerSettings()
    require_columns(meta_df, [TARGET, GROUP], "meta dataset")
    sets = _checked_sets(meta_df, feature_sets, p)
    k = int(p.cv_folds)
    scheme = (
        f"holdout: stratified {1 - p.test_size:.0%}/{p.test_size:.0%}; "
        f"cv: StratifiedKFold({k}); grouped_cv: StratifiedGroupKFold({k}, groups={GROUP})"
    )
    y = meta_df[TARGET].to_numpy(dtype=bool).astype(int)
    groups = meta_df[GROUP].to_numpy()
    X_by_set = {name: _check_features(meta_df, feats, name) for name, feats in sets.items()}
    split = _holdout_split(y, p.test_size, seed, "compare_classifiers")
    if split is None:
        baseline = p.baseline_feature_set
        rows = [_nan_row(m, n, f, baseline, scheme) for n, f in sets.items() for m in p.model_names]
        out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
        return (out, pd.DataFrame(columns=list(SCORE_COLUMNS))) if return_scores else out
    proto = _protocol(y, groups, split, p, scheme, seed)
    rows, score_parts, oof_scores = _fit_all(proto, sets, X_by_set, p)
    _add_gains(rows, oof_scores, proto)
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    if not return_scores:
        return out
    return out, pd.concat(score_parts, ignore_index=True)


def _score_frame(
    set_name: str,
    model: str,
    split: str,
    rows: np.ndarray,
    groups: np.ndarray,
    y: np.ndarray,
    score: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature_set": set_name,
            "model": model,
            "split": split,
            "row": rows,
            "image_id": groups[rows],
            "y_true": y[rows].astype(bool),
            "y_score": np.asarray(score, dtype=float),
        }
    )
