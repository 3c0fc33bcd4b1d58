"""Markdown summary of the Gold tables. Every sentence is derived from the numbers: the winner,
the verdict on what XAI adds and the leakage caveat change when the tables change."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from xai_kedro.core.meta.estimation import METHODS
from xai_kedro.core.meta.features import CONFIDENCE_SET, XAI_CONFIDENCE_SET, XAI_SET
from xai_kedro.core.meta.plots import METHOD_LABELS

logger = logging.getLogger(__name__)

# Cohen's (1988) conventional thresholds for |d|.
EFFECT_SIZE_WORDS = ((0.2, "negligible"), (0.5, "small"), (0.8, "medium"), (np.inf, "large"))


def _f(value: object, spec: str = ".3f") -> str:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return "n/a" if not np.isfinite(v) else format(v, spec)


def _ci(low: object, high: object, spec: str = ".3f") -> str:
    return f"95% CI [{_f(low, spec)}, {_f(high, spec)}]"


def _table(tables: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame | None:
    t = tables.get(name)
    if t is None or len(t) == 0:
        logger.info("summary_report: table %s missing or empty; section skipped", name)
        return None
    return t


def effect_size_word(d: float) -> str:
    """Cohen's verbal label for |d|."""
    if not np.isfinite(d):
        return "undefined"
    return next(word for limit, word in EFFECT_SIZE_WORDS if abs(d) < limit)


def _predictor_section(corr: pd.DataFrame) -> list[str]:
    lines = ["## Best XAI predictor"]
    groups = corr["feature_group"] if "feature_group" in corr.columns else "xai"
    x = corr[(groups == "xai") & corr["pearson_r"].notna()]
    if x.empty:
        return [*lines, "No XAI feature has a defined correlation with OOD correctness."]
    b = x.loc[x["pearson_r"].abs().idxmax()]
    r, d = float(b["pearson_r"]), float(b["cohens_d"])
    lines.append(
        f"The strongest XAI predictor of correctness under corruption is **{b['feature']}**: "
        f"Pearson r = {_f(r, '+.3f')} ({_ci(b['pearson_ci_low'], b['pearson_ci_high'], '+.3f')}), "
        f"Cohen's d = {_f(d, '+.3f')} ({_ci(b['cohens_d_ci_low'], b['cohens_d_ci_high'], '+.3f')}), "
        f"a {effect_size_word(d)} effect (n = {_f(b['n'], '.0f')} OOD predictions)."
    )
    direction = "more" if r > 0 else "fewer"
    lo, hi = float(b["pearson_ci_low"]), float(b["pearson_ci_high"])
    if np.isfinite(lo) and (lo > 0 or hi < 0):
        lines.append(
            f"Higher {b['feature']} on the clean image goes with {direction} correct "
            "predictions under corruption; the interval excludes zero."
        )
    else:
        lines.append("The interval includes zero, so not even the direction is established.")
    conf = corr[(groups == "confidence") & corr["pearson_r"].notna()]
    if not conf.empty:
        c = conf.loc[conf["pearson_r"].abs().idxmax()]
        stronger = "stronger" if abs(float(c["pearson_r"])) > abs(r) else "weaker"
        lines.append(
            f"For comparison, the strongest confidence feature, {c['feature']}, has "
            f"r = {_f(c['pearson_r'], '+.3f')} ({stronger} than the best XAI feature)."
        )
    return lines


def _meta_section(comp: pd.DataFrame) -> list[str]:
    lines = ["## Meta-learners (XAI features only)"]
    cx = comp[comp["feature_set"] == XAI_SET]
    if cx["roc_auc"].isna().all():
        return [*lines, "No meta-learner could be evaluated (degenerate target)."]
    b = cx.loc[cx["roc_auc"].idxmax()]
    lines.append(
        f"On seed 001's stratified holdout split the best model is **{b['model']}** "
        f"(ROC-AUC {_f(b['roc_auc'])}, {_ci(b['roc_auc_ci_low'], b['roc_auc_ci_high'])}; "
        f"5-fold CV AUC {_f(b['cv_auc_mean'])} ± {_f(b['cv_auc_std'])})."
    )
    if cx["grouped_cv_auc_mean"].notna().any():
        g = cx.loc[cx["grouped_cv_auc_mean"].idxmax()]
        same = "the same model" if g["model"] == b["model"] else f"**{g['model']}**"
        lines.append(
            f"With folds grouped by image the best is {same} "
            f"(grouped CV AUC {_f(g['grouped_cv_auc_mean'])} ± {_f(g['grouped_cv_auc_std'])}; "
            f"pooled out-of-fold AUC {_f(g['grouped_oof_auc'])}, "
            f"{_ci(g['grouped_oof_auc_ci_low'], g['grouped_oof_auc_ci_high'])})."
        )
        low = float(g["grouped_oof_auc_ci_low"])
        verdict = (
            "better than chance"
            if np.isfinite(low) and low > 0.5
            else "not distinguishable from chance (the interval reaches 0.5)"
        )
        lines.append(f"Under grouped CV the XAI meta-learner is {verdict}.")
    return lines


def _added_value_section(comp: pd.DataFrame) -> list[str]:
    lines = ["## Does XAI add over confidence?"]
    ext = comp[(comp["feature_set"] == XAI_CONFIDENCE_SET) & comp["auc_gain_vs_baseline"].notna()]
    if ext.empty:
        return [*lines, "Not computed (no grouped out-of-fold scores for both feature sets)."]
    g = ext.loc[ext["grouped_oof_auc"].idxmax()]
    base = comp[(comp["feature_set"] == CONFIDENCE_SET) & (comp["model"] == g["model"])]
    base_auc = base["grouped_oof_auc"].iloc[0] if len(base) else np.nan
    gain = float(g["auc_gain_vs_baseline"])
    lo, hi = float(g["auc_gain_ci_low"]), float(g["auc_gain_ci_high"])
    numbers = (
        f"grouped out-of-fold AUC {_f(g['grouped_oof_auc'])} for XAI + confidence vs "
        f"{_f(base_auc)} for confidence alone ({g['model']}), difference {_f(gain, '+.3f')} "
        f"({_ci(lo, hi, '+.3f')}, paired cluster bootstrap over images)"
    )
    if np.isfinite(lo) and lo > 0:
        lines.append(f"XAI features **add** predictive power over confidence: {numbers}.")
    elif np.isfinite(hi) and hi < 0:
        lines.append(f"Adding XAI features **lowers** the AUC compared with confidence: {numbers}.")
    else:
        lines.append(f"There is **no evidence that XAI adds** over confidence: {numbers}.")
    alone = comp[(comp["feature_set"] == XAI_SET) & (comp["model"] == g["model"])]
    if len(alone) and np.isfinite(float(alone["auc_gain_vs_baseline"].iloc[0])):
        a = alone.iloc[0]
        lines.append(
            f"XAI alone minus confidence alone: {_f(a['auc_gain_vs_baseline'], '+.3f')} "
            f"({_ci(a['auc_gain_ci_low'], a['auc_gain_ci_high'], '+.3f')})."
        )
    return lines


def _leakage_section(comp: pd.DataFrame, tolerance: float) -> list[str]:
    gap = comp["cv_auc_mean"] - comp["grouped_cv_auc_mean"]
    if gap.isna().all():
        return []
    i = gap.idxmax()
    worst = comp.loc[i]
    if gap[i] > tolerance:
        return [
            f"**Caveat (leakage):** the ungrouped 5-fold CV AUC exceeds the image-grouped one by "
            f"up to {_f(gap[i])} ({worst['model']} on {worst['feature_set']}: "
            f"{_f(worst['cv_auc_mean'])} vs {_f(worst['grouped_cv_auc_mean'])}). One image "
            "appears under several corruptions and adapters, so ungrouped folds put it on both "
            "sides and overstate performance; trust the grouped numbers."
        ]
    return [
        f"Ungrouped and image-grouped CV AUCs agree within {_f(tolerance)} "
        f"(largest gap {_f(gap[i], '+.3f')}): no sign of leakage across images."
    ]


def _corruption_section(worst: pd.DataFrame) -> list[str]:
    lines = ["## Worst corruption"]
    top = worst.loc[worst["max_drop_pct"].idxmax()]
    if not float(top["max_drop_pct"]) > 0:
        lines.append("No corruption lowered any adapter's accuracy below its clean level.")
        return lines
    counts = worst.loc[worst["max_drop_pct"] > 0, "worst_corruption"].value_counts()
    lines.append(
        f"**{counts.index[0]}** is the most damaging corruption for {int(counts.iloc[0])} of "
        f"{len(worst)} adapters. The largest drop is {_f(top['max_drop_pct'], '.1f')}% relative "
        f"to clean accuracy ({top['adapter_id']}, {top['worst_corruption']}/"
        f"{top['worst_severity']})."
    )
    for _, r in worst.iterrows():
        lines.append(
            f"- {r['adapter_id']}: {r['worst_corruption']}/{r['worst_severity']} "
            f"(drop {_f(r['max_drop_pct'], '.1f')}%)"
        )
    return lines


def _adapter_section(ranking: pd.DataFrame) -> list[str]:
    lines = ["## Adapter ranking (OOD accuracy)"]
    for _, r in ranking.iterrows():
        rank = r.get("adapter_rank")
        rank_txt = f", LoRA rank {rank}" if pd.notna(rank) else ""
        lines.append(
            f"{int(r['ood_rank'])}. {r['adapter_id']}{rank_txt}: OOD {_f(r['ood_accuracy'])}, "
            f"clean {_f(r['clean_accuracy'])}"
        )
    if len(ranking) > 1:
        best, last = ranking.iloc[0], ranking.iloc[-1]
        gap = (float(best["ood_accuracy"]) - float(last["ood_accuracy"])) * 100
        lines.append(
            f"\nMost robust: **{best['adapter_id']}**; least robust: **{last['adapter_id']}** "
            f"({_f(gap, '.1f')} points apart)."
        )
    return lines


def _estimation_section(estimation: pd.DataFrame) -> list[str]:
    lines = ["## Per-adapter OOD accuracy estimation"]
    maes = {}
    for m in METHODS:
        col = f"{m}_abs_err"
        if col in estimation.columns and estimation[col].notna().any():
            maes[m] = float(estimation[col].mean())
    if not maes:
        return [*lines, "No estimator produced a prediction."]
    for m, mae in sorted(maes.items(), key=lambda kv: kv[1]):
        lines.append(f"- {METHOD_LABELS[m]}: mean absolute error {_f(mae, '.2f')} points")
    best = min(maes, key=maes.get)
    lines.append(f"Lowest error: **{METHOD_LABELS[best]}** over {len(estimation)} adapters.")
    if "meta_regressor" not in maes:
        lines.append("The meta-regressor is unavailable (too few adapters for leave-one-out).")
    return lines


def summary_report(tables: Mapping[str, pd.DataFrame], leakage_tolerance: float = 0.01) -> str:
    """Markdown key findings from the Gold tables (sections with missing tables are skipped).

    ``leakage_tolerance``: how much the ungrouped CV AUC may exceed the grouped one before the
    report warns about leakage (AUC units; small gaps are fold noise).
    """
    out = ["# XAI vs. OOD robustness: key findings", ""]
    quant = _table(tables, "quantitative_summary")
    if quant is not None:
        pairs = zip(quant["metric"], quant["value"], strict=True)
        out += [", ".join(f"{m}: {v}" for m, v in pairs) + ".", ""]
    corr = _table(tables, "correlations")
    if corr is not None:
        out += [*_predictor_section(corr), ""]
    comp = _table(tables, "classifier_comparison")
    if comp is not None:
        out += [*_meta_section(comp), *_leakage_section(comp, leakage_tolerance), ""]
        out += [*_added_value_section(comp), ""]
    worst = _table(tables, "worst_corruption")
    if worst is not None:
        out += [*_corruption_section(worst), ""]
    ranking = _table(tables, "adapter_ranking")
    if ranking is not None:
        out += [*_adapter_section(ranking), ""]
    estimation = _table(tables, "accuracy_estimation")
    if estimation is not None:
        out += [*_estimation_section(estimation), ""]
    return "\n".join(out).rstrip() + "\n"
