"""The report's answer to the research question, written from the Gold numbers with intervals.

Headline numbers are image-grouped and label-free: each confidence score used directly, the
meta-learners scored out of fold with folds grouped by image, and paired, image-clustered
bootstrap differences. The reference experiment's stratified protocol is shown after, as a
reproduction, and labelled leaky (an image is on both sides of its split).
"""

from __future__ import annotations

import pandas as pd

from xai_kedro.core.meta.prediction.baselines import learned_method
from xai_kedro.core.meta.prediction.features import CONFIDENCE_SET, XAI_CONFIDENCE_SET, XAI_SET
from xai_kedro.core.meta.report.formatting import fmt, interval_sign

DEFINITIONS = (
    "Target class: the clean image's predicted class (label-free, as in RISE); curve features "
    "computed on the true label would carry the label and are never used as predictors.",
    "Deletion / insertion AUC: area of the target probability as the most important patches "
    "are removed / revealed, over the true fraction of patches; in [0, 1]; lower / higher = "
    "faithful.",
    "deletion_ratio_auc: the reference experiment's p(perturbed)/p(clean), clipped at 1 so it "
    "stays in [0, 1]; reported, not a predictor.",
    "Empty input: the step with no patch left scores the image's own blurred copy, so no "
    "class-dependent constant is shared by all images.",
    "Attention entropy: Shannon entropy of the patch heatmap / log N (0 focused, 1 uniform); "
    "Gini: sparsity of the heatmap (0 uniform).",
    "Confidence baselines: max-softmax (confidence), top-1 minus top-2 margin, predictive "
    "entropy and energy (-logsumexp of the logits), all on the clean image.",
    "AUROC: how well a score ranks correct above wrong predictions under corruption (0.5 = "
    "chance). AURC / AUGRC: area under the selective / generalized risk-coverage curve (lower "
    "= better).",
    "Intervals: 95% percentile bootstrap resampling whole images; p-values: tests on per-image "
    "means; so no interval or p-value treats one image's rows as independent.",
)


def _with_ci(row: pd.Series, column: str, spec: str = ".3f") -> str:
    return (
        f"{fmt(row[column], spec)} [{fmt(row[f'{column}_ci_low'], spec)}, "
        f"{fmt(row[f'{column}_ci_high'], spec)}]"
    )


def definitions_section() -> list[str]:
    return ["## Definitions", *(f"- {line}" for line in DEFINITIONS)]


def baselines_section(baselines: pd.DataFrame, differences: pd.DataFrame | None) -> list[str]:
    """Every method's AUROC / AURC / AUGRC, then the verdict from the paired differences."""
    lines = [
        "## Headline: XAI against the confidence baselines (image-grouped, label-free)",
        "How well each method ranks the predictions that stay correct under corruption "
        "(brackets: 95% intervals, images resampled).",
        "",
        "| method | kind | AUROC | AURC | AUGRC | n |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in baselines.iterrows():
        kind = r["kind"] if r["kind"] == "score" else f"meta-learner ({r['model']}, grouped OOF)"
        lines.append(
            f"| {r['method']} | {kind} | {_with_ci(r, 'auroc')} | {_with_ci(r, 'aurc')} | "
            f"{_with_ci(r, 'augrc', '.4f')} | {int(r['n'])} |"
        )
    if differences is None or differences.empty:
        return [*lines, "", "No paired differences (no grouped out-of-fold scores)."]
    lines += ["", *_verdict_lines(differences)]
    return lines


def _added_value_verdict(better_auroc: int, lower_aurc: int) -> str:
    """The verdict from the two paired intervals (+1 improved, -1 harmed, 0 interval includes 0),
    naming the measure when only one moved so a one-measure effect is not read as both."""
    moved = {"AUROC": better_auroc, "AURC": lower_aurc}
    helped = [m for m, sign in moved.items() if sign == 1]
    hurt = [m for m, sign in moved.items() if sign == -1]
    still = [m for m, sign in moved.items() if sign == 0]
    unchanged = f" ({still[0]}: interval includes 0)" if still else ""
    if helped and hurt:
        return f"**Mixed: adding XAI helps on {helped[0]} and hurts on {hurt[0]}**"
    if len(helped) == 2:
        return "**XAI adds predictive power beyond confidence**"
    if helped:
        return f"**XAI adds a little beyond confidence, on {helped[0]} only**{unchanged}"
    if len(hurt) == 2:
        return "**Adding XAI makes the confidence meta-learner worse** on both measures"
    if hurt:
        return f"**Adding XAI makes the confidence meta-learner worse** on {hurt[0]}{unchanged}"
    return "**No evidence that XAI adds beyond confidence** (both intervals include 0)"


def _verdict_lines(differences: pd.DataFrame) -> list[str]:
    by = differences.set_index("comparison")
    out = []
    main = f"{learned_method(XAI_CONFIDENCE_SET)} - {learned_method(CONFIDENCE_SET)}"
    if main in by.index:
        r = by.loc[main]
        auc, rc = (
            interval_sign(r["auroc_diff_ci_low"], r["auroc_diff_ci_high"]),
            interval_sign(r["aurc_diff_ci_low"], r["aurc_diff_ci_high"]),
        )
        numbers = (
            f"AUROC difference {_with_ci(r, 'auroc_diff', '+.3f')}, AURC difference "
            f"{_with_ci(r, 'aurc_diff', '+.3f')} ({r['model']}, paired)"
        )
        verdict = _added_value_verdict(better_auroc=auc, lower_aurc=-rc)
        out.append(f"**Does XAI add beyond confidence?** {verdict}: {numbers}.")
    alone = [c for c in by.index if c.startswith(f"{learned_method(XAI_SET)} - ")]
    if alone:
        out += [
            "",
            "The XAI meta-learner alone against each confidence baseline (AUROC difference):",
        ]
        for c in alone:
            r = by.loc[c]
            word = {1: "better", -1: "worse", 0: "not distinguishable"}[
                interval_sign(r["auroc_diff_ci_low"], r["auroc_diff_ci_high"])
            ]
            out.append(f"- vs {c.split(' - ', 1)[1]}: {_with_ci(r, 'auroc_diff', '+.3f')} ({word})")
    return out


def reproduction_section(comp: pd.DataFrame, tolerance: float) -> list[str]:
    """The reference experiment's stratified protocol, labelled leaky, with the leakage gap."""
    lines = ["## Reproduction of the reference protocol (leaky)"]
    cx = comp[comp["feature_set"] == XAI_SET]
    if cx["roc_auc"].isna().all():
        return [*lines, "Not computed (degenerate target)."]
    b = cx.loc[cx["roc_auc"].idxmax()]
    lines.append(
        f"On the reference experiment's stratified 80/20 holdout (rows split at random, so every "
        f"test image is also in training under other corruptions and adapters) the highest "
        f"holdout ROC-AUC of the XAI meta-learners is {b['model']}'s, {fmt(b['roc_auc'])} "
        f"[{fmt(b['roc_auc_ci_low'])}, {fmt(b['roc_auc_ci_high'])}] and ungrouped 5-fold CV AUC "
        f"{fmt(b['cv_auc_mean'])}. These numbers are shown to reproduce the reference; they are "
        "not the answer."
    )
    gap = comp["cv_auc_mean"] - comp["grouped_cv_auc_mean"]
    if gap.notna().any():
        i = gap.idxmax()
        w = comp.loc[i]
        size = "overstates" if gap[i] > tolerance else "agrees within the tolerance with"
        lines.append(
            f"Ungrouped CV {size} image-grouped CV: largest gap {fmt(gap[i], '+.3f')} AUC "
            f"({w['model']} on {w['feature_set']}: {fmt(w['cv_auc_mean'])} vs "
            f"{fmt(w['grouped_cv_auc_mean'])})."
        )
    return lines
