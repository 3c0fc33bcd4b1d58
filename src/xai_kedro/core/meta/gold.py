"""The ten Gold tables of the reference experiment (plus accuracy_estimation), built from the Silver tables.

Conventions (documented because the reference experiment leaves them open):
- clean accuracy is measured on the same clean test images (silver_xai), not the zoo's
  validation accuracy, so clean and OOD numbers come from one image set;
- drop_pct = (clean_accuracy - accuracy) / clean_accuracy x 100 (relative drop, the reference experiment's
  "accuracy drop %"), drop_points = (clean_accuracy - accuracy) x 100 (absolute);
- the summary tables (metric, value) hold mixed values, stored as strings for Parquet.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters import estimation as est
from xai_kedro.core.meta.adapters.estimation_summary import estimation_summary
from xai_kedro.core.meta.adapters.ranking import ranking_intervals
from xai_kedro.core.meta.adapters.selection import adapter_selection
from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.prediction.baselines import confidence_baselines
from xai_kedro.core.meta.prediction.comparison import (
    COMPARISON_COLUMNS,
    SEED_COLUMNS,
    compare_classifiers,
)
from xai_kedro.core.meta.prediction.correlations import correlations
from xai_kedro.core.meta.prediction.features import (
    ANALYSIS_FEATURES,
    CONFIDENCE_SET,
    KEYS,
    OOD_KEYS,
    XAI_CONFIDENCE_SET,
    XAI_FEATURES,
    XAI_SET,
    build_meta_dataset,
    default_feature_sets,
    require_columns,
)
from xai_kedro.core.meta.prediction.importance import feature_importance
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings
from xai_kedro.core.meta.report.formatting import fmt
from xai_kedro.core.robustness.columns import family_rows

logger = logging.getLogger(__name__)

SEVERITY_ORDER = {"shallow": 1, "medium": 2, "heavy": 3}

DEGRADATION_COLUMNS = (
    "adapter_id",
    "adapter_rank",
    "corruption",
    "severity",
    "severity_value",
    "accuracy",
    "clean_accuracy",
    "drop_pct",
    "drop_points",
    "n",
)
WORST_COLUMNS = (
    "adapter_id",
    "adapter_rank",
    "worst_corruption",
    "worst_severity",
    "max_drop_pct",
    "accuracy",
)


def severity_rank(severity: pd.Series) -> pd.Series:
    """Order of severity labels: shallow < medium < heavy, or the integer of "1".."5".

    Needed because severity_value does not sort the same way for every corruption (contrast
    factor falls as severity rises). Unknown labels get NaN and sort last.
    """
    s = severity.astype(str).str.strip().str.lower()
    named = s.map(SEVERITY_ORDER)
    numeric = pd.to_numeric(s, errors="coerce")
    return named.fillna(numeric)


def _zoo_ranks(adapter_zoo: pd.DataFrame | None) -> pd.Series:
    """adapter_id -> LoRA rank (nullable int); empty when no manifest is given."""
    if adapter_zoo is None:
        return pd.Series(dtype="Int64", name="adapter_rank")
    require_columns(adapter_zoo, ["adapter_id", "rank"], "adapter_zoo")
    zoo = adapter_zoo.drop_duplicates("adapter_id").set_index("adapter_id")
    return zoo["rank"].astype("Int64").rename("adapter_rank")


def _with_rank(df: pd.DataFrame, adapter_zoo: pd.DataFrame | None) -> pd.DataFrame:
    ranks = _zoo_ranks(adapter_zoo)
    out = df.copy()
    out["adapter_rank"] = out["adapter_id"].map(ranks).astype("Int64")
    unknown = sorted(set(out["adapter_id"]) - set(ranks.index))
    if adapter_zoo is not None and unknown:
        logger.warning("adapters %s are not in the zoo manifest; adapter_rank is NA", unknown)
    return out


def classifier_comparison(comparison: pd.DataFrame) -> pd.DataFrame:
    """compare_classifiers' output with the reference experiment's columns first and the XAI set's rows first."""
    require_columns(comparison, list(SEED_COLUMNS) + ["feature_set"], "comparison")
    order = {XAI_SET: 0, CONFIDENCE_SET: 1, XAI_CONFIDENCE_SET: 2}
    key = comparison["feature_set"].map(order).fillna(len(order))
    out = comparison.assign(_k=key).sort_values("_k", kind="stable").drop(columns="_k")
    extra = [c for c in out.columns if c not in COMPARISON_COLUMNS]
    return out.reindex(columns=[*COMPARISON_COLUMNS, *extra]).reset_index(drop=True)


def adapter_summary(
    silver_xai: pd.DataFrame,
    silver_ood: pd.DataFrame,
    adapter_zoo: pd.DataFrame | None = None,
    features: Sequence[str] = XAI_FEATURES,
) -> pd.DataFrame:
    """Per adapter: OOD accuracy, mean/std of the XAI features on clean images, clean accuracy,
    and n_samples (OOD rows, as in the reference experiment)."""
    require_columns(silver_xai, ["adapter_id", "is_correct", *features], "silver_xai")
    g = silver_xai.groupby("adapter_id", sort=True)
    out = pd.DataFrame({"accuracy": est.ood_accuracy_per_adapter(silver_ood)})
    for f in features:
        out[f"mean_{f}"] = g[f].mean()
    for f in features:
        out[f"std_{f}"] = g[f].std(ddof=1)
    out["clean_accuracy"] = g["is_correct"].mean().astype(float)
    out["n_samples"] = silver_ood.groupby("adapter_id").size()
    out["n_images"] = g.size()
    out = _with_rank(out.rename_axis("adapter_id").reset_index(), adapter_zoo)
    out[["n_samples", "n_images"]] = out[["n_samples", "n_images"]].astype("Int64")
    first = ["adapter_id", "adapter_rank"]
    cols = first + [c for c in out.columns if c not in first]
    return out[cols].sort_values(["adapter_rank", "adapter_id"]).reset_index(drop=True)


def degradation(
    silver_xai: pd.DataFrame,
    silver_ood: pd.DataFrame,
    adapter_zoo: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Accuracy per (adapter, corruption, severity) and its drop from clean accuracy."""
    require_columns(silver_xai, ["adapter_id", "is_correct"], "silver_xai")
    cond = est.ood_accuracy_by_condition(family_rows(silver_ood))
    if "severity_value" not in cond.columns:
        cond["severity_value"] = np.nan
    clean = silver_xai.groupby("adapter_id")["is_correct"].mean().astype(float)
    cond["clean_accuracy"] = cond["adapter_id"].map(clean)
    denom = cond["clean_accuracy"].where(cond["clean_accuracy"] > 0)
    cond["drop_pct"] = (cond["clean_accuracy"] - cond["accuracy"]) / denom * 100.0
    cond["drop_points"] = (cond["clean_accuracy"] - cond["accuracy"]) * 100.0
    cond = _with_rank(cond, adapter_zoo)
    cond["_sev"] = severity_rank(cond["severity"])
    cond = cond.sort_values(["adapter_id", "corruption", "_sev", "severity"], kind="stable")
    return cond.reindex(columns=list(DEGRADATION_COLUMNS)).reset_index(drop=True)


def worst_corruption(degradation_df: pd.DataFrame) -> pd.DataFrame:
    """Per adapter, the (corruption, severity) with the largest drop_pct (the reference experiment's table)."""
    require_columns(degradation_df, ["adapter_id", "corruption", "drop_pct"], "degradation")
    rows = []
    for adapter, g in degradation_df.groupby("adapter_id", sort=True):
        if g["drop_pct"].notna().any():
            best = g.loc[g["drop_pct"].idxmax()]
            rows.append(
                {
                    "adapter_id": adapter,
                    "adapter_rank": best.get("adapter_rank", pd.NA),
                    "worst_corruption": best["corruption"],
                    "worst_severity": best.get("severity"),
                    "max_drop_pct": float(best["drop_pct"]),
                    "accuracy": best.get("accuracy", np.nan),
                }
            )
        else:
            logger.warning("adapter %s: no defined drop_pct; worst corruption unknown", adapter)
    out = pd.DataFrame(rows, columns=list(WORST_COLUMNS))
    out["adapter_rank"] = out["adapter_rank"].astype("Int64")
    return out


def adapter_ranking(
    summary: pd.DataFrame,
    silver_ood: pd.DataFrame | None = None,
    settings: EstimationSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Adapters ordered by OOD accuracy (ood_rank 1 = most robust), with clean accuracy, the
    clean-to-OOD gap in points and the mean XAI features; given ``silver_ood``, each adapter's
    gap to the first with an interval over test images (`adapters.ranking`)."""
    require_columns(summary, ["adapter_id", "accuracy", "clean_accuracy"], "adapter_summary")
    out = summary.rename(columns={"accuracy": "ood_accuracy"}).sort_values(
        ["ood_accuracy", "adapter_id"], ascending=[False, True], kind="stable"
    )
    out.insert(0, "ood_rank", np.arange(1, len(out) + 1))
    out["accuracy_gap_points"] = (out["clean_accuracy"] - out["ood_accuracy"]) * 100.0
    keep = [
        "ood_rank",
        "adapter_id",
        "adapter_rank",
        "ood_accuracy",
        "clean_accuracy",
        "accuracy_gap_points",
    ]
    means = [c for c in out.columns if c.startswith("mean_")]
    out = out.reindex(columns=keep + means).reset_index(drop=True)
    return out if silver_ood is None else ranking_intervals(out, silver_ood, settings, seed)


def xai_feature_ranking(corr: pd.DataFrame, importance: pd.DataFrame) -> pd.DataFrame:
    """XAI features ranked by the mean of three ranks: |Pearson r|, |Cohen's d|, and model
    importance (mean of XGBoost gain and RandomForest importance, both summing to 1)."""
    require_columns(corr, ["feature", "pearson_r", "cohens_d"], "correlations")
    require_columns(importance, ["feature", "xgb_importance", "rf_importance"], "importance")
    c = corr
    if "feature_group" in c.columns:
        c = c[c["feature_group"] == "xai"]
    imp = importance.set_index("feature")
    df = pd.DataFrame({"feature": c["feature"].to_numpy()})
    df["abs_pearson_r"] = c["pearson_r"].abs().to_numpy()
    df["abs_cohens_d"] = c["cohens_d"].abs().to_numpy()
    df["importance"] = df["feature"].map(imp[["xgb_importance", "rf_importance"]].mean(axis=1))
    rank_of = {
        "rank_correlation": "abs_pearson_r",
        "rank_effect_size": "abs_cohens_d",
        "rank_importance": "importance",
    }
    for name, col in rank_of.items():
        df[name] = df[col].rank(ascending=False, method="min", na_option="bottom")
    df["mean_rank"] = df[list(rank_of)].mean(axis=1)
    df = df.sort_values(["mean_rank", "abs_pearson_r"], ascending=[True, False], kind="stable")
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df.reset_index(drop=True)


def _fmt(value: Any, spec: str = ".3f") -> str:
    return fmt(value, spec, missing="nan")


def _ci(low: Any, high: Any, spec: str = ".3f") -> str:
    return f"[{_fmt(low, spec)}, {_fmt(high, spec)}]"


def qualitative_summary(
    corr: pd.DataFrame, comparison: pd.DataFrame, xai_set: str = XAI_SET
) -> pd.DataFrame:
    """The reference experiment's qualitative rows (best predictor, |r|, |d|, best meta-learner, its AUC) plus
    the grouped-CV view and what XAI adds over the confidence baseline."""
    x = corr[corr["feature_group"] == "xai"] if "feature_group" in corr.columns else corr
    rows: list[tuple[str, str]] = []
    if x["pearson_r"].notna().any():
        best = x.loc[x["pearson_r"].abs().idxmax()]
        rows += [
            ("Best XAI predictor", str(best["feature"])),
            ("Highest correlation", _fmt(best["pearson_r"])),
            ("Highest correlation 95% CI", _ci(best["pearson_ci_low"], best["pearson_ci_high"])),
        ]
    else:
        rows += [("Best XAI predictor", "none (all correlations undefined)")]
    if x["cohens_d"].notna().any():
        bd = x.loc[x["cohens_d"].abs().idxmax()]
        rows += [
            ("Best effect size (Cohen's d)", _fmt(bd["cohens_d"])),
            ("Best effect size feature", str(bd["feature"])),
        ]
    cx = comparison[comparison["feature_set"] == xai_set]
    if cx["roc_auc"].notna().any():
        bm = cx.loc[cx["roc_auc"].idxmax()]
        rows += [("Best meta-learner", str(bm["model"])), ("Meta-learner AUC", _fmt(bm["roc_auc"]))]
    else:
        rows += [("Best meta-learner", "none (AUC undefined)")]
    if cx["grouped_cv_auc_mean"].notna().any():
        bg = cx.loc[cx["grouped_cv_auc_mean"].idxmax()]
        rows += [
            ("Best meta-learner (grouped CV)", str(bg["model"])),
            ("Meta-learner AUC (grouped CV)", _fmt(bg["grouped_cv_auc_mean"])),
        ]
    gains = comparison[comparison["auc_gain_vs_baseline"].notna()]
    ext = gains[gains["feature_set"] == XAI_CONFIDENCE_SET]
    if len(ext):
        g = ext.loc[ext["grouped_oof_auc"].idxmax()]
        rows += [
            (
                "XAI adds over confidence (AUC diff, 95% CI)",
                f"{_fmt(g['auc_gain_vs_baseline'], '+.3f')} "
                f"{_ci(g['auc_gain_ci_low'], g['auc_gain_ci_high'], '+.3f')} ({g['model']})",
            )
        ]
    return pd.DataFrame(rows, columns=["metric", "value"])


def quantitative_summary(
    silver_xai: pd.DataFrame, silver_ood: pd.DataFrame, degradation_df: pd.DataFrame
) -> pd.DataFrame:
    """Counts and drop extremes (the reference experiment's quantitative rows plus image/row counts)."""
    drops = degradation_df["drop_pct"]
    rows = [
        ("Adapters tested", str(silver_ood["adapter_id"].nunique())),
        ("Corruption types", str(silver_ood["corruption"].nunique())),
        ("Severity levels", str(silver_ood["severity"].nunique())),
        ("Max accuracy drop (%)", _fmt(drops.max(), ".2f")),
        ("Avg accuracy drop (%)", _fmt(drops.mean(), ".2f")),
        ("Test images", str(silver_xai["image_id"].nunique())),
        ("Clean (image, adapter) rows", str(len(silver_xai))),
        ("OOD rows", str(len(silver_ood))),
    ]
    return pd.DataFrame(rows, columns=["metric", "value"])


def _correlation_groups(meta_df: pd.DataFrame, sets: dict[str, list[str]]) -> dict[str, list[str]]:
    """The correlation table's feature groups; the analysis-only ones when the data has them."""
    groups = {"xai": sets[XAI_SET], "confidence": sets[CONFIDENCE_SET]}
    analysis = [f for f in ANALYSIS_FEATURES if f in meta_df and meta_df[f].notna().any()]
    if analysis:
        groups["analysis"] = analysis
    return groups


def build_gold_tables(
    silver_xai: pd.DataFrame,
    silver_ood: pd.DataFrame,
    adapter_zoo: pd.DataFrame | None = None,
    meta: MetaLearnerSettings | None = None,
    estimation: EstimationSettings | None = None,
    seed: int = 0,
    degradation_table: pd.DataFrame | None = None,
    silver_source: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """All Gold outputs in one call: the ten reference tables, accuracy_estimation with its
    summary and adapter_selection, and the meta-learners' test/out-of-fold scores
    (``classifier_scores``, for ROC plots).

    ``degradation_table`` reuses a degradation table already built (the ood stage writes it);
    ``silver_source`` holds the validation-split predictions (clean and under source-side
    shifts) the label-free estimators take as their source."""
    p = meta or MetaLearnerSettings()
    estimation = estimation or EstimationSettings()
    # A function of the Silver rows, not of their order (Spark returns them in any order).
    # These tables answer for the reference grid; core.meta.families answers per shift family.
    silver_xai = silver_xai.sort_values(list(KEYS), ignore_index=True)
    silver_ood = family_rows(silver_ood).sort_values(list(OOD_KEYS), ignore_index=True)
    silver_source = None if silver_source is None else family_rows(silver_source)
    meta_df = build_meta_dataset(silver_xai, silver_ood)
    sets = default_feature_sets(meta_df, p.include_object_share)
    boot = p.resampling(seed)
    corr = correlations(meta_df, _correlation_groups(meta_df, sets), boot)
    comp, scores = compare_classifiers(meta_df, sets, p, seed, return_scores=True)
    comp = classifier_comparison(comp)
    baselines, baseline_differences = confidence_baselines(meta_df, scores, boot)
    importance = feature_importance(meta_df, sets[XAI_SET], p, seed)
    summary = adapter_summary(silver_xai, silver_ood, adapter_zoo)
    degr = degradation_table
    if degr is None:
        degr = degradation(silver_xai, silver_ood, adapter_zoo)
    estimate = est.accuracy_estimation(
        silver_xai, silver_ood, silver_source, None, estimation, seed
    )
    return {
        "correlations": corr,
        "classifier_comparison": comp,
        "feature_importance": importance,
        "adapter_summary": summary,
        "degradation": degr,
        "qualitative_summary": qualitative_summary(corr, comp),
        "quantitative_summary": quantitative_summary(silver_xai, silver_ood, degr),
        "xai_feature_ranking": xai_feature_ranking(corr, importance),
        "adapter_ranking": adapter_ranking(summary, silver_ood, estimation, seed),
        "worst_corruption": worst_corruption(degr),
        "accuracy_estimation": estimate,
        "accuracy_estimation_summary": estimation_summary(estimate, estimation, seed),
        "adapter_selection": adapter_selection(estimate, estimation, seed, silver_ood=silver_ood),
        "classifier_scores": scores,
        "confidence_baselines": baselines,
        "confidence_baseline_differences": baseline_differences,
    }
