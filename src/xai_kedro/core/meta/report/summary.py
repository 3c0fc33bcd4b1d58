"""Markdown summary of the Gold tables. Every sentence is derived from the numbers: the winner,
the verdict on what XAI adds and the leakage caveat change when the tables change."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters.estimation import (
    BASELINES,
    META_CONFIDENCE,
    META_REGRESSOR,
    REGRESSORS,
)
from xai_kedro.core.meta.adapters.ranking import not_separated_from_best
from xai_kedro.core.meta.explainers.faithfulness import faithfulness_section
from xai_kedro.core.meta.explainers.features import explainer_features_section
from xai_kedro.core.meta.families import families_section
from xai_kedro.core.meta.report.findings import (
    baselines_section,
    definitions_section,
    reproduction_section,
)
from xai_kedro.core.meta.report.formatting import (
    detectable_effect,
    detectable_note,
    fmt,
    interval_sign,
)

logger = logging.getLogger(__name__)

# Cohen's (1988) conventional thresholds for |d|.
EFFECT_SIZE_WORDS = ((0.2, "negligible"), (0.5, "small"), (0.8, "medium"), (np.inf, "large"))


def _ci(low: object, high: object, spec: str = ".3f") -> str:
    return f"95% CI [{fmt(low, spec)}, {fmt(high, spec)}]"


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


def _abs_interval(row: pd.Series) -> tuple[float, float]:
    """The interval of |r| implied by r's interval (from 0 when it straddles 0)."""
    lo, hi = float(row["pearson_ci_low"]), float(row["pearson_ci_high"])
    if lo > 0 or hi < 0:
        return min(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    return 0.0, max(abs(lo), abs(hi))


def _stronger_words(a: pd.Series, b: pd.Series) -> str:
    """Whether |r| of ``a`` is separated from |r| of ``b`` (non-overlapping intervals)."""
    (a_lo, a_hi), (b_lo, b_hi) = _abs_interval(a), _abs_interval(b)
    if a_lo > b_hi:
        return "stronger, the |r| intervals do not overlap"
    if b_lo > a_hi:
        return "weaker, the |r| intervals do not overlap"
    return "not separated: the |r| intervals overlap"


def _predictor_section(corr: pd.DataFrame) -> list[str]:
    lines = ["## Strongest XAI predictor"]
    groups = corr["feature_group"] if "feature_group" in corr.columns else "xai"
    x = corr[(groups == "xai") & corr["pearson_r"].notna()]
    if x.empty:
        return [*lines, "No XAI feature has a defined correlation with OOD correctness."]
    ranked = x.assign(_abs=x["pearson_r"].abs()).sort_values("_abs", ascending=False)
    b = ranked.iloc[0]
    r, d = float(b["pearson_r"]), float(b["cohens_d"])
    lines.append(
        f"The strongest XAI predictor of correctness under corruption is **{b['feature']}**: "
        f"Pearson r = {fmt(r, '+.3f')} ({_ci(b['pearson_ci_low'], b['pearson_ci_high'], '+.3f')}), "
        f"Cohen's d = {fmt(d, '+.3f')} ({_ci(b['cohens_d_ci_low'], b['cohens_d_ci_high'], '+.3f')}), "
        f"a {effect_size_word(d)} effect (n = {fmt(b['n'], '.0f')} OOD predictions of "
        f"{fmt(b.get('n_images'), '.0f')} images; p = {fmt(b.get('pearson_p'), '.2g')} from the "
        f"per-image means, r over images {fmt(b.get('pearson_r_images'), '+.3f')})."
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
    if len(ranked) > 1:
        runner = ranked.iloc[1]
        lines.append(
            f"Against the next XAI feature, {runner['feature']} (r = "
            f"{fmt(runner['pearson_r'], '+.3f')}): {_stronger_words(b, runner)}."
        )
    conf = corr[(groups == "confidence") & corr["pearson_r"].notna()]
    if not conf.empty:
        c = conf.loc[conf["pearson_r"].abs().idxmax()]
        lines.append(
            f"For comparison, the strongest confidence feature, {c['feature']}, has "
            f"r = {fmt(c['pearson_r'], '+.3f')} "
            f"({_ci(c['pearson_ci_low'], c['pearson_ci_high'], '+.3f')}); against the strongest "
            f"XAI feature: {_stronger_words(c, b)}."
        )
    return lines


def _quarantine_section(quarantine: pd.DataFrame) -> list[str]:
    """Inputs that never reached Bronze, by reason (duplicates with conflicting labels included)."""
    counts = quarantine["reason"].value_counts().sort_index()
    listed = ", ".join(f"{reason} {int(n)}" for reason, n in counts.items())
    return ["## Quarantined inputs", f"{int(counts.sum())} inputs were quarantined: {listed}."]


def _corruption_section(worst: pd.DataFrame) -> list[str]:
    lines = ["## Accuracy drop per corruption"]
    top = worst.loc[worst["max_drop_pct"].idxmax()]
    if not float(top["max_drop_pct"]) > 0:
        lines.append("No corruption lowered any adapter's accuracy below its clean level.")
        return lines
    counts = worst.loc[worst["max_drop_pct"] > 0, "worst_corruption"].value_counts()
    lines.append(
        f"By point estimate, **{counts.index[0]}** drops accuracy the most for "
        f"{int(counts.iloc[0])} of {len(worst)} adapters (per-adapter drops without intervals: a "
        f"description of this run, not a ranking). The largest drop is "
        f"{fmt(top['max_drop_pct'], '.1f')}% relative "
        f"to clean accuracy ({top['adapter_id']}, {top['worst_corruption']}/"
        f"{top['worst_severity']})."
    )
    for _, r in worst.iterrows():
        lines.append(
            f"- {r['adapter_id']}: {r['worst_corruption']}/{r['worst_severity']} "
            f"(drop {fmt(r['max_drop_pct'], '.1f')}%)"
        )
    return lines


def _adapter_section(ranking: pd.DataFrame) -> list[str]:
    lines = ["## Adapter ranking (OOD accuracy)"]
    for _, r in ranking.iterrows():
        rank = r.get("adapter_rank")
        rank_txt = f", LoRA rank {rank}" if pd.notna(rank) else ""
        lines.append(
            f"{int(r['ood_rank'])}. {r['adapter_id']}{rank_txt}: OOD {fmt(r['ood_accuracy'])}, "
            f"clean {fmt(r['clean_accuracy'])}"
        )
    if len(ranking) > 1:
        best, last = ranking.iloc[0], ranking.iloc[-1]
        gap = (float(best["ood_accuracy"]) - float(last["ood_accuracy"])) * 100
        tied = not_separated_from_best(ranking)
        if not tied:
            head = f"Most robust: **{best['adapter_id']}** (every gap interval above 0)"
        else:
            shown = ", ".join(tied[:5]) + (f" and {len(tied) - 5} more" if len(tied) > 5 else "")
            head = (
                f"Most robust: not established: {best['adapter_id']} is first but not "
                f"separated from {shown} (gap interval over test images includes 0)"
            )
        interval = ""
        if "gap_to_best_ci_low" in ranking.columns:
            interval = (
                f" [{fmt(last['gap_to_best_ci_low'], '.1f')}, "
                f"{fmt(last['gap_to_best_ci_high'], '.1f')}]"
            )
        lines.append(
            f"\n{head}; last by OOD accuracy: {last['adapter_id']}, {fmt(gap, '.1f')}{interval} "
            "points below the first."
        )
    return lines


def _with_ci(row: pd.Series, value: str, prefix: str, spec: str = ".2f") -> str:
    return (
        f"{fmt(row[value], spec)} [{fmt(row[f'{prefix}_ci_low'], spec)}, "
        f"{fmt(row[f'{prefix}_ci_high'], spec)}]"
    )


def _estimation_section(summary: pd.DataFrame, selection: pd.DataFrame | None) -> list[str]:
    """Comparison of the XAI meta-regressor with the label-free estimators, and selection."""
    lines = ["## Per-adapter OOD accuracy estimation"]
    overall = summary[summary["level"] == "overall"].sort_values("mae_points", kind="stable")
    if overall.empty or overall["mae_points"].isna().all():
        return [*lines, "No estimator produced a prediction."]
    n_adapters = int(overall["n_adapters"].max())
    n_families = int(overall["n_families"].max())
    lines += [
        f"{n_adapters} adapters in {n_families} config families. The meta-regressor predicts "
        "each adapter from a forest fitted on the other families only (on their measured OOD "
        "accuracies: it learns from labelled shifted data of other adapters, the label-free "
        "estimators use none); brackets are 95% "
        "bootstrap intervals over adapters (whole families resampled). Errors are in accuracy "
        "points; MAE − meta < 0 means the method beats the XAI + confidence meta-regressor.",
        "",
        "| method | MAE | max abs error | Spearman rho | MAE − meta |",
        "|---|---|---|---|---|",
    ]
    for _, r in overall.iterrows():
        lines.append(
            f"| {r['label']} | {_with_ci(r, 'mae_points', 'mae')} | "
            f"{_with_ci(r, 'max_abs_error_points', 'max_abs_error')} | "
            f"{_with_ci(r, 'spearman_rho', 'spearman')} | "
            f"{_with_ci(r, 'mae_minus_meta_points', 'mae_minus_meta', '+.2f')} |"
        )
    per = summary[summary["level"] == "corruption"]
    shifts = sorted(per["shift"].unique())
    if shifts:
        lines += [
            "",
            "Per corruption (MAE [interval]; Spearman rho):",
            "",
            "| method | " + " | ".join(shifts) + " |",
            "|---|" + "---|" * len(shifts),
        ]
        table = per.set_index(["method", "shift"])
        for method, label in zip(overall["method"], overall["label"], strict=True):
            cells = []
            for shift in shifts:
                if (method, shift) not in table.index:
                    cells.append("n/a")
                    continue
                r = table.loc[(method, shift)]
                cells.append(f"{_with_ci(r, 'mae_points', 'mae')}; {fmt(r['spearman_rho'], '.2f')}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", *_estimation_verdicts(overall)]
    if selection is not None:
        lines += ["", *_selection_lines(selection)]
    return lines


def _estimation_verdicts(overall: pd.DataFrame) -> list[str]:
    rows = overall.set_index("method")
    if META_REGRESSOR not in rows.index or not np.isfinite(rows.loc[META_REGRESSOR, "mae_points"]):
        return ["The meta-regressor is unavailable (too few adapters or config families)."]
    free = rows[~rows.index.isin([*REGRESSORS, *BASELINES]) & rows["mae_points"].notna()]
    verdicts = {
        m: interval_sign(r["mae_minus_meta_ci_low"], r["mae_minus_meta_ci_high"])
        for m, r in free.iterrows()
    }
    better = [rows.loc[m, "label"] for m, v in verdicts.items() if v < 0]
    unclear = [rows.loc[m, "label"] for m, v in verdicts.items() if v == 0]
    question = (
        "**Does the XAI profile estimate OOD accuracy better than every label-free estimator?**"
    )
    if not verdicts:
        answer = "No label-free estimator ran."
    elif better:
        answer = f"**No**: {', '.join(better)} reach a lower MAE (difference interval below 0)."
    elif unclear:
        mde = max(
            detectable_effect(r["mae_minus_meta_ci_low"], r["mae_minus_meta_ci_high"])
            for m, r in free.iterrows()
            if verdicts[m] == 0
        )
        answer = (
            f"**Not established**: against {', '.join(unclear)} the MAE difference interval "
            f"includes zero (no difference larger than {fmt(mde, '.2f')} points could be "
            "detected: 80 % power, alpha 0.05, 2.8 x the bootstrap SE)."
        )
    else:
        answer = "**Yes**: every label-free estimator's MAE is higher, with intervals above 0."
    lines = [f"{question} {answer}", *_baseline_verdict(rows)]
    if META_CONFIDENCE in rows.index and np.isfinite(rows.loc[META_CONFIDENCE, "mae_points"]):
        c = rows.loc[META_CONFIDENCE]
        v = interval_sign(c["mae_minus_meta_ci_low"], c["mae_minus_meta_ci_high"])
        word = {1: "lowers the error", -1: "raises the error", 0: "makes no established difference"}
        lines.append(
            f"Ablation: adding the XAI aggregates to the confidence aggregates {word[v]} "
            f"(confidence-only MAE minus XAI + confidence MAE "
            f"{_with_ci(c, 'mae_minus_meta_points', 'mae_minus_meta', '+.2f')} points"
            f"{detectable_note(c['mae_minus_meta_ci_low'], c['mae_minus_meta_ci_high'])})."
        )
    return lines


def _baseline_verdict(rows: pd.DataFrame) -> list[str]:
    """Whether the meta-regressor beats the trivial baselines (same out-of-family labels, no
    features): the claim that its features carry the estimate rests on this."""
    present = [m for m in BASELINES if m in rows.index and np.isfinite(rows.loc[m, "mae_points"])]
    if not present:
        return []
    parts = []
    for m in present:
        r = rows.loc[m]
        v = interval_sign(r["mae_minus_meta_ci_low"], r["mae_minus_meta_ci_high"])
        word = {1: "beats", -1: "loses to", 0: "is not separated from"}[v]
        parts.append(
            f"it {word} {r['label'].removeprefix('Baseline: ')} (baseline MAE minus meta "
            f"{_with_ci(r, 'mae_minus_meta_points', 'mae_minus_meta', '+.2f')} points"
            f"{detectable_note(r['mae_minus_meta_ci_low'], r['mae_minus_meta_ci_high'])})"
        )
    return [
        "**Does the meta-regressor beat the trivial baselines (no features, the same labelled "
        "shifted data of the other families)?** " + "; ".join(parts) + "."
    ]


def pick_of(r: pd.Series) -> str:
    """The picked adapter, or what a row without a pick (the expected random pick) stands for."""
    return "(mean of all)" if pd.isna(r["picked_adapter"]) else str(r["picked_adapter"])


def _selection_lines(selection: pd.DataFrame) -> list[str]:
    overall = selection[selection["level"] == "overall"]
    if overall.empty:
        return []
    lines = [
        "### Selection (all corruptions)",
        "Each method picks the adapter it predicts to be most accurate under shift; regret = "
        "oracle's true OOD accuracy minus the pick's; gain = the pick's minus that of the "
        "adapter with the best clean validation accuracy (points; 95% two-way bootstrap "
        "intervals: config families and test images redrawn). The random pick is the expected "
        "outcome of picking uniformly, the floor every rule must clear.",
        "",
        "| method | pick | true OOD accuracy | regret | gain vs clean pick |",
        "|---|---|---|---|---|",
    ]

    for _, r in overall.iterrows():
        lines.append(
            f"| {r['label']} | {pick_of(r)} | {fmt(r['picked_true_accuracy'])} | "
            f"{_with_ci(r, 'regret_points', 'regret')} | "
            f"{_with_ci(r, 'gain_vs_clean_points', 'gain_vs_clean', '+.2f')} |"
        )
    first = overall.iloc[0]
    lines.append(
        f"\nOracle: {first['oracle_adapter']} ({fmt(first['oracle_accuracy'])}); by clean "
        f"accuracy: {first['clean_pick_adapter']} ({fmt(first['clean_pick_accuracy'])})."
    )
    meta = overall[overall["method"] == META_REGRESSOR]
    question = "**Does selecting by the XAI meta-regressor beat selecting by clean accuracy?**"
    if meta.empty or pd.isna(meta["picked_adapter"].iloc[0]):
        return [*lines, f"{question} Not computed (no meta-regressor predictions)."]
    m = meta.iloc[0]
    v = interval_sign(m["gain_vs_clean_ci_low"], m["gain_vs_clean_ci_high"])
    answer = {
        1: "**Yes**: the gain interval is above 0",
        -1: "**No**, it selects worse: the gain interval is below 0",
        0: "**Not established**: the gain interval includes 0",
    }[v]
    lines.append(
        f"{question} {answer} (gain "
        f"{_with_ci(m, 'gain_vs_clean_points', 'gain_vs_clean', '+.2f')} points"
        f"{detectable_note(m['gain_vs_clean_ci_low'], m['gain_vs_clean_ci_high'])})."
    )
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
    out += [*definitions_section(), ""]
    sections: list[tuple[str, Callable[[pd.DataFrame], list[str]]]] = [
        ("bronze_quarantine", _quarantine_section),
        (
            "confidence_baselines",
            lambda t: baselines_section(t, _table(tables, "confidence_baseline_differences")),
        ),
        ("correlations", _predictor_section),
        ("classifier_comparison", lambda t: reproduction_section(t, leakage_tolerance)),
        ("worst_corruption", _corruption_section),
        ("adapter_ranking", _adapter_section),
        (
            "accuracy_estimation_summary",
            lambda t: _estimation_section(t, _table(tables, "adapter_selection")),
        ),
        ("explainer_faithfulness", faithfulness_section),
        ("explainer_features", explainer_features_section),
        (
            "family_hypothesis",
            lambda t: families_section(
                t, _table(tables, "family_headline"), _table(tables, "family_estimation")
            ),
        ),
    ]
    for name, section in sections:  # a section whose table is missing or empty is skipped
        table = _table(tables, name)
        if table is not None:
            out += [*section(table), ""]
    return "\n".join(out).rstrip() + "\n"
