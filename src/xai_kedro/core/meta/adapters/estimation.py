"""Per-adapter OOD accuracy estimation: the XAI meta-regressor against label-free estimators.

The framework's promise (Gold layer, per-adapter task): aggregate each adapter's label-free
clean-image profile into one vector x_k (mean, std and percentiles of every feature over its
clean test images) and predict its accuracy under shift, y_k = f(x_k), with a RandomForest
regressor. The zoo holds near-duplicates (the seeds of one config), so validation holds out
whole **config families**: an adapter is predicted by a model that saw none of its siblings.
The ablation fits the same regressor on confidence aggregates only and on XAI aggregates only.
Two trivial baselines use the same out-of-family labels with no features: the mean OOD accuracy
of the other families, and a line from clean to OOD accuracy fitted on them; a meta-regressor
that does not beat them has learnt nothing beyond "the other adapters' shifted accuracy".

The yardstick is the label-free estimators of ``adapters/estimators.py`` (AC, DoC, ATC-MC/NE, COT,
nuclear norm, MaNo, agreement-on-the-line), each computed per (adapter, corruption, severity)
from the adapter's own source predictions (clean validation split) and its unlabelled shifted
predictions. Per corruption and overall, predictions and measured accuracies are means over the
conditions (equal image counts). The summary reports, per method and shift, MAE and max absolute
error in accuracy points and Spearman's rank correlation with bootstrap intervals over adapters
(whole families resampled), and the paired MAE difference to the meta-regressor.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from xai_kedro.core.meta.adapters.estimators import ESTIMATORS
from xai_kedro.core.meta.adapters.label_free import label_free_predictions
from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.prediction.features import (
    CONFIDENCE_FEATURES,
    TARGET_FOLLOWING,
    XAI_FEATURES,
    require_columns,
)

logger = logging.getLogger(__name__)

META_REGRESSOR = "meta_regressor"  # XAI + confidence aggregates (the framework's estimator)
META_CONFIDENCE = "meta_regressor_conf"  # ablation: confidence aggregates only
META_XAI = "meta_regressor_xai"  # ablation: XAI aggregates only
REGRESSORS = (META_REGRESSOR, META_CONFIDENCE, META_XAI)
# trivial baselines: what the labelled shifted data of the other families gives with no features
BASELINE_CONSTANT = "mean_other_families"  # the other families' mean OOD accuracy
BASELINE_LINE = "clean_line"  # clean -> OOD accuracy, a line fitted on the other families
BASELINES = (BASELINE_CONSTANT, BASELINE_LINE)
METHODS: tuple[str, ...] = (*REGRESSORS, *BASELINES, *ESTIMATORS)
METHOD_LABELS: dict[str, str] = {
    META_REGRESSOR: "Meta-regressor (XAI + confidence)",
    META_CONFIDENCE: "Meta-regressor (confidence only)",
    META_XAI: "Meta-regressor (XAI only)",
    BASELINE_CONSTANT: "Baseline: other families' mean",
    BASELINE_LINE: "Baseline: other families' clean -> OOD line",
    **{name: e.label for name, e in ESTIMATORS.items()},
}
OVERALL = "all"  # shift name of the pooled row
LEVELS = ("condition", "corruption", "overall")
# The levels the estimation summary and the adapter selection report (no per-condition rows).
SUMMARY_LEVELS = ("corruption", "overall")

ESTIMATION_COLUMNS = (
    "adapter_id",
    "family",
    "method",
    "shift",
    "level",
    "corruption",
    "severity",
    "predicted_accuracy",
    "measured_accuracy",
    "error_points",
    "abs_error_points",
    "clean_accuracy",
    "n_target_rows",
)


def overall_first(
    table: pd.DataFrame, rank: Mapping[str, float], unknown: float = np.nan
) -> pd.DataFrame:
    """The rows of a per-(method, shift) table: overall first, then by shift, then by method
    ``rank`` (methods missing from it get ``unknown``); stable otherwise."""
    out = table.assign(
        _o=table["method"].map(rank).fillna(unknown),
        _l=(table["level"] != "overall").astype(int),
    )
    return (
        out.sort_values(["_l", "shift", "_o"], kind="stable")
        .drop(columns=["_o", "_l"])
        .reset_index(drop=True)
    )


# ------------------------------------------------------------------ measured accuracy
def ood_accuracy_per_adapter(silver_ood: pd.DataFrame) -> pd.Series:
    """Mean OOD correctness per adapter over all corruptions and severities."""
    require_columns(silver_ood, ["adapter_id", "is_correct"], "silver_ood")
    acc = silver_ood.groupby("adapter_id", sort=True)["is_correct"].mean().astype(float)
    return acc.rename("ood_accuracy")


def ood_accuracy_by_condition(silver_ood: pd.DataFrame) -> pd.DataFrame:
    """OOD accuracy and row count per (adapter, corruption, severity)."""
    keys = ["adapter_id", "corruption", "severity"]
    require_columns(silver_ood, [*keys, "is_correct"], "silver_ood")
    g = silver_ood.groupby(keys, sort=True)
    out = pd.DataFrame({"accuracy": g["is_correct"].mean().astype(float), "n": g.size()})
    if "severity_value" in silver_ood.columns:
        out["severity_value"] = g["severity_value"].first()
    return out.reset_index()


# ------------------------------------------------------------------ families and folds
def adapter_families(adapter_ids: Sequence[str], pattern: str) -> pd.Series:
    """adapter_id -> config family: the id with every match of ``pattern`` removed (the seed
    token by default, so `r8_qv_s0` and `r8_qv_s1` are one family)."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"accuracy_estimation.family_pattern {pattern!r}: {exc}") from exc
    ids = pd.Index(adapter_ids, name="adapter_id")
    return pd.Series([rx.sub("", a) or a for a in ids], index=ids, name="family")


def family_folds(families: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-family-out folds (train, test) over row positions, families in sorted order."""
    fam = np.asarray(families, dtype=object)
    return [(np.flatnonzero(fam != f), np.flatnonzero(fam == f)) for f in sorted(set(fam))]


def family_grouped_predictions(
    X: np.ndarray,
    Y: np.ndarray,
    families: Sequence[str],
    settings: EstimationSettings | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-family predictions of a (multi-output) RandomForestRegressor: each family is
    predicted by a forest fitted on all other families. NaN (with a warning) with fewer than
    ``min_adapters`` adapters or a single family."""
    p = settings or EstimationSettings()
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    Y2 = Y.reshape(len(Y), -1)
    if X.ndim != 2 or X.shape[0] != Y2.shape[0] or len(families) != X.shape[0]:
        raise ValueError(f"X {X.shape}, Y {Y.shape} and {len(families)} families must align")
    pred = np.full(Y2.shape, np.nan)
    folds = family_folds(families)
    if X.shape[0] < int(p.min_adapters) or len(folds) < 2:
        logger.warning(
            "accuracy estimation: %d adapters in %d families (min_adapters=%d, need >= 2 "
            "families); meta-regressor is NaN",
            X.shape[0],
            len(folds),
            p.min_adapters,
        )
        return pred.reshape(Y.shape)
    for train, test in folds:
        reg = RandomForestRegressor(random_state=seed, n_jobs=p.n_jobs, **p.regressor)
        reg.fit(X[train], Y2[train] if Y2.shape[1] > 1 else Y2[train, 0])
        reg.set_params(n_jobs=1)  # sum the trees in tree order, not thread completion order
        pred[test] = reg.predict(X[test]).reshape(len(test), -1)
    return pred.reshape(Y.shape)


def family_baseline_predictions(
    clean: np.ndarray, Y: np.ndarray, families: Sequence[str], min_adapters: int = 3
) -> dict[str, np.ndarray]:
    """Out-of-family predictions of the two trivial baselines, per condition (column of ``Y``):
    the mean OOD accuracy of the other families' adapters, and a least-squares line from clean
    to OOD accuracy fitted on them (the mean where their clean accuracies are all equal). NaN
    under the meta-regressor's conditions (``min_adapters``, >= 2 families), so they compare on
    the same adapters."""
    clean = np.asarray(clean, dtype=float)
    Y2 = np.asarray(Y, dtype=float).reshape(len(clean), -1)
    out = {m: np.full(Y2.shape, np.nan) for m in BASELINES}
    folds = family_folds(families)
    if len(clean) < int(min_adapters) or len(folds) < 2:
        return {m: v.reshape(np.shape(Y)) for m, v in out.items()}
    for train, test in folds:
        mean = Y2[train].mean(axis=0)
        out[BASELINE_CONSTANT][test] = mean
        x = clean[train] - clean[train].mean()
        sxx = float((x * x).sum())
        slope = (x @ (Y2[train] - mean)) / sxx if sxx > 0 else np.zeros_like(mean)
        out[BASELINE_LINE][test] = mean + np.outer(clean[test] - clean[train].mean(), slope)
    return {m: v.reshape(np.shape(Y)) for m, v in out.items()}


def _baseline_frames(
    clean: pd.Series, target: pd.DataFrame, families: pd.Series, min_adapters: int
) -> list[pd.DataFrame]:
    """Long condition rows of the trivial baselines (see `family_baseline_predictions`)."""
    preds = family_baseline_predictions(
        clean.reindex(target.index).to_numpy(dtype=float),
        target.to_numpy(),
        families.reindex(target.index).to_numpy(),
        min_adapters,
    )
    frames = []
    for method, pred in preds.items():
        long = pd.DataFrame(pred, index=target.index, columns=target.columns).stack(
            ["corruption", "severity"], future_stack=True
        )
        frames.append(long.rename("predicted_accuracy").reset_index().assign(method=method))
    return frames


# ------------------------------------------------------------------ features
def label_free_profile_features(
    silver_xai: pd.DataFrame, features: Sequence[str] | None = None
) -> list[str]:
    """The XAI features of the profile, guarded against a label leak: when the curves followed
    the true label (``target_class`` differs from ``pred`` on some row: xai_silver.engine.target
    label) the curve metrics computed from the target's probability carry the label, so they are
    dropped from the default set and refused when named (as the prediction-level sets do)."""
    chosen = [f for f in (features or XAI_FEATURES) if f in silver_xai.columns]
    follows_label = "target_class" in silver_xai.columns and bool(
        (silver_xai["target_class"] != silver_xai["pred"]).any()
    )
    leaking = [f for f in chosen if f in TARGET_FOLLOWING]
    if not follows_label or not leaking:
        return chosen
    if features is not None:
        raise ValueError(
            f"accuracy estimation: features {leaking} follow the curves' target class, which is "
            "the true label here (xai_silver.engine.target: label); they would leak it"
        )
    logger.warning(
        "silver_xai curves follow the true label: %s are left out of the adapter profile",
        ", ".join(leaking),
    )
    return [f for f in chosen if f not in TARGET_FOLLOWING]


def aggregate_adapter_features(
    silver_xai: pd.DataFrame,
    features: Sequence[str] | None = None,
    percentiles: Sequence[float] = (10, 50, 90),
) -> pd.DataFrame:
    """One row per adapter: mean, std and percentiles of each feature over its clean images,
    plus clean accuracy and the image count (the framework's x_k)."""
    if features is None:
        features = [f for f in (*XAI_FEATURES, *CONFIDENCE_FEATURES) if f in silver_xai.columns]
    require_columns(silver_xai, ["adapter_id", "is_correct", *features], "silver_xai")
    g = silver_xai.groupby("adapter_id", sort=True)
    parts: dict[str, pd.Series] = {
        "n_images": g.size(),
        "clean_accuracy": g["is_correct"].mean().astype(float),
    }
    for f in features:
        parts[f"{f}_mean"] = g[f].mean()
        parts[f"{f}_std"] = g[f].std(ddof=1)
        for q in percentiles:
            parts[f"{f}_p{q:g}"] = g[f].quantile(q / 100.0)
    return pd.DataFrame(parts).rename_axis("adapter_id").reset_index()


def _columns_of(agg: pd.DataFrame, features: Sequence[str]) -> list[str]:
    return [c for c in agg.columns if any(c.startswith(f"{f}_") for f in features)]


# ------------------------------------------------------------------ the estimation table
def _split_source(
    silver_source: pd.DataFrame | None, silver_xai: pd.DataFrame, clean_shift: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
    """(clean source rows, shifted source rows, where the source came from)."""
    if silver_source is None or silver_source.empty:
        logger.warning(
            "no source (validation) predictions: the clean test rows of silver_xai are the "
            "source and nothing is calibrated on source-side shifts"
        )
        return silver_xai, None, "clean test split (silver_xai)"
    require_columns(silver_source, ["corruption"], "silver_source")
    clean = silver_source["corruption"] == clean_shift
    if not clean.any():
        raise ValueError(
            f"silver_source has no rows with corruption == {clean_shift!r} "
            "(accuracy_estimation.clean_shift)"
        )
    return silver_source[clean], silver_source[~clean], "validation split"


def _aggregate_levels(cond: pd.DataFrame) -> pd.DataFrame:
    """Condition rows plus per-corruption and overall means of predicted and measured accuracy."""
    keys = ["adapter_id", "method"]
    cond = cond.assign(
        shift=cond["corruption"].astype(str) + "/" + cond["severity"].astype(str),
        level="condition",
    )
    values = {"predicted_accuracy": "mean", "measured_accuracy": "mean", "n_target_rows": "sum"}
    # a NaN prediction in any condition makes the aggregate NaN (no silent partial means)
    agg = {**values, "predicted_accuracy": lambda s: s.mean() if s.notna().all() else np.nan}
    per_corruption = cond.groupby([*keys, "corruption"], sort=True).agg(agg).reset_index()
    per_corruption = per_corruption.assign(shift=per_corruption["corruption"], level="corruption")
    overall = cond.groupby(keys, sort=True).agg(agg).reset_index()
    overall = overall.assign(shift=OVERALL, level="overall", corruption=OVERALL)
    return pd.concat([cond, per_corruption, overall], ignore_index=True)


def _measured_and_profiles(
    silver_xai: pd.DataFrame,
    silver_ood: pd.DataFrame,
    source: pd.DataFrame,
    features: Sequence[str],
    percentiles: Sequence[float],
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(measured accuracy per condition, per-adapter profiles indexed by adapter, the adapters
    in both Silver tables, sorted); clean accuracy is the source's."""
    measured = ood_accuracy_by_condition(silver_ood).rename(
        columns={"accuracy": "measured_accuracy", "n": "n_target_rows"}
    )
    agg = aggregate_adapter_features(silver_xai, features, percentiles)
    source_acc = source.groupby("adapter_id")["is_correct"].mean().astype(float)
    agg["clean_accuracy"] = agg["adapter_id"].map(source_acc)
    adapters = sorted(set(agg["adapter_id"]) & set(measured["adapter_id"]))
    dropped = sorted(set(agg["adapter_id"]) ^ set(measured["adapter_id"]))
    if dropped:
        logger.warning("adapters %s are in only one of silver_xai/silver_ood; skipped", dropped)
    agg = agg.set_index("adapter_id").loc[adapters]
    measured = measured[measured["adapter_id"].isin(adapters)]
    return measured, agg, adapters


def _regressor_predictions(
    agg: pd.DataFrame,
    target: pd.DataFrame,
    families: pd.Series,
    xai_features: list[str],
    conf_features: list[str],
    settings: EstimationSettings,
    seed: int,
) -> list[pd.DataFrame]:
    """Long out-of-family predictions (adapter, corruption, severity) of each meta-regressor:
    XAI + confidence aggregates and the two ablations."""
    regressor_inputs = {
        META_REGRESSOR: [*_columns_of(agg, xai_features + conf_features), "clean_accuracy"],
        META_CONFIDENCE: [*_columns_of(agg, conf_features), "clean_accuracy"],
        META_XAI: _columns_of(agg, xai_features),
    }
    frames = []
    for method, cols in regressor_inputs.items():
        if not cols:
            logger.warning("%s skipped: silver_xai has none of its features", method)
            continue
        X = agg[cols].to_numpy(dtype=float)
        if not np.isfinite(X).all():
            bad = [c for c in cols if not np.isfinite(agg[c].to_numpy(dtype=float)).all()]
            raise ValueError(f"aggregated features {bad} have NaN (too few images per adapter?)")
        Y = target.to_numpy()
        pred = family_grouped_predictions(X, Y, families.to_numpy(), settings, seed)
        long = pd.DataFrame(pred, index=target.index, columns=target.columns).stack(
            ["corruption", "severity"], future_stack=True
        )
        frames.append(long.rename("predicted_accuracy").reset_index().assign(method=method))
    return frames


def _estimation_table(
    cond: pd.DataFrame, families: pd.Series, clean_accuracy: pd.Series
) -> pd.DataFrame:
    """Condition rows aggregated to every level, with errors, families and a stable order."""
    out = _aggregate_levels(cond)
    out["family"] = out["adapter_id"].map(families)
    out["clean_accuracy"] = out["adapter_id"].map(clean_accuracy)
    out["error_points"] = (out["predicted_accuracy"] - out["measured_accuracy"]) * 100.0
    out["abs_error_points"] = out["error_points"].abs()
    order = {m: i for i, m in enumerate(METHODS)}
    out = out.assign(
        _m=out["method"].map(order), _l=out["level"].map({lv: i for i, lv in enumerate(LEVELS)})
    )
    out = out.sort_values(["_m", "_l", "shift", "adapter_id"], kind="stable")
    return out.reindex(columns=list(ESTIMATION_COLUMNS)).reset_index(drop=True)


def accuracy_estimation(
    silver_xai: pd.DataFrame,
    silver_ood: pd.DataFrame,
    silver_source: pd.DataFrame | None = None,
    features: Sequence[str] | None = None,
    settings: EstimationSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Long table, one row per (adapter, method, shift): predicted and measured OOD accuracy
    and the error in accuracy points, at condition, corruption and overall level.

    ``features``: label-free XAI features of the profile (default: every declared label-free XAI
    metric present). Ground-truth features (object-mask share) never enter the regressor.
    """
    p = settings or EstimationSettings()
    source, calibration, origin = _split_source(silver_source, silver_xai, p.clean_shift)
    logger.info("accuracy estimation: source = %s", origin)
    xai_features = label_free_profile_features(silver_xai, features)
    conf_features = [f for f in CONFIDENCE_FEATURES if f in silver_xai.columns]
    measured, agg, adapters = _measured_and_profiles(
        silver_xai, silver_ood, source, [*xai_features, *conf_features], p.percentiles
    )
    families = adapter_families(adapters, p.family_pattern)
    target = measured.pivot_table(
        index="adapter_id", columns=["corruption", "severity"], values="measured_accuracy"
    ).loc[adapters]
    if target.isna().any().any():
        raise ValueError("silver_ood: every adapter needs every (corruption, severity) condition")
    frames = _regressor_predictions(agg, target, families, xai_features, conf_features, p, seed)
    frames += _baseline_frames(agg["clean_accuracy"], target, families, p.min_adapters)
    frames.append(
        label_free_predictions(
            silver_ood[silver_ood["adapter_id"].isin(adapters)],
            source,
            calibration,
            p.estimators,
            p.aline_clip,
            p.min_adapters,
            p.exclude_target_corruption,
        )
    )
    cond = pd.concat(frames, ignore_index=True).merge(
        measured[["adapter_id", "corruption", "severity", "measured_accuracy", "n_target_rows"]],
        on=["adapter_id", "corruption", "severity"],
        how="left",
        validate="many_to_one",
    )
    return _estimation_table(cond, families, agg["clean_accuracy"])
