"""The Markdown report is written from the numbers: change a number, the sentence changes."""

from __future__ import annotations

import pandas as pd
import pytest

from xai_kedro.core.meta.report.summary import effect_size_word, summary_report

MODELS = ("RandomForest", "LogisticRegression")


def _comparison(
    holdout_auc: dict[str, float] | None = None,
    gain_ci: tuple[float, float, float] = (0.03, 0.01, 0.05),
    cv_gap: float = 0.0,
) -> pd.DataFrame:
    holdout_auc = holdout_auc or {"RandomForest": 0.72, "LogisticRegression": 0.70}
    rows = []
    for fs, base_auc in (("xai", 0.70), ("confidence", 0.66), ("xai+confidence", 0.69)):
        for m in MODELS:
            grouped = base_auc + (0.01 if m == "LogisticRegression" else 0.0)
            gain = (
                gain_ci
                if fs == "xai+confidence"
                else ((0.04, 0.02, 0.06) if fs == "xai" else (float("nan"),) * 3)
            )
            rows.append(
                {
                    "model": m,
                    "feature_set": fs,
                    "accuracy": 0.7,
                    "roc_auc": holdout_auc[m] if fs == "xai" else 0.6,
                    "roc_auc_ci_low": 0.6,
                    "roc_auc_ci_high": 0.8,
                    "cv_auc_mean": grouped + cv_gap,
                    "cv_auc_std": 0.01,
                    "grouped_cv_auc_mean": grouped,
                    "grouped_cv_auc_std": 0.01,
                    "grouped_oof_auc": grouped,
                    "grouped_oof_auc_ci_low": grouped - 0.05,
                    "grouped_oof_auc_ci_high": grouped + 0.05,
                    "auc_gain_vs_baseline": gain[0],
                    "auc_gain_ci_low": gain[1],
                    "auc_gain_ci_high": gain[2],
                }
            )
    return pd.DataFrame(rows)


def _correlations(r_entropy: float = -0.17, r_insertion: float = 0.18) -> pd.DataFrame:
    def row(f: str, r: float, group: str = "xai") -> dict:
        return {
            "feature": f,
            "feature_group": group,
            "pearson_r": r,
            "pearson_ci_low": r - 0.02,
            "pearson_ci_high": r + 0.02,
            "cohens_d": 3 * r,
            "cohens_d_ci_low": 3 * r - 0.05,
            "cohens_d_ci_high": 3 * r + 0.05,
            "n": 1000,
        }

    return pd.DataFrame(
        [
            row("attn_entropy", r_entropy),
            row("insertion_auc", r_insertion),
            row("confidence", 0.1, "confidence"),
        ]
    )


def _estimation_summary(doc_diff_ci: tuple[float, float] = (1.0, 3.0)) -> pd.DataFrame:
    """Overall and one corruption; meta-regressor MAE 4, DoC 6 (difference +2 with doc_diff_ci),
    the confidence-only ablation 5 (+1 [-0.5, 2.5])."""

    def row(method: str, label: str, shift: str, mae: float, diff: float, ci: tuple) -> dict:
        return {
            "method": method,
            "label": label,
            "shift": shift,
            "level": "overall" if shift == "all" else "corruption",
            "n_adapters": 12,
            "n_families": 6,
            "mae_points": mae,
            "mae_ci_low": mae - 1,
            "mae_ci_high": mae + 1,
            "max_abs_error_points": 2 * mae,
            "max_abs_error_ci_low": mae,
            "max_abs_error_ci_high": 3 * mae,
            "spearman_rho": 0.5,
            "spearman_ci_low": 0.1,
            "spearman_ci_high": 0.8,
            "mae_minus_meta_points": diff,
            "mae_minus_meta_ci_low": ci[0],
            "mae_minus_meta_ci_high": ci[1],
        }

    rows = []
    for shift in ("all", "contrast"):
        rows += [
            row("meta_regressor", "Meta-regressor (XAI + confidence)", shift, 4.0, 0.0, (0, 0)),
            row(
                "meta_regressor_conf",
                "Meta-regressor (confidence only)",
                shift,
                5.0,
                1.0,
                (-0.5, 2.5),
            ),
            row("doc", "DoC", shift, 6.0, 2.0, doc_diff_ci),
        ]
    return pd.DataFrame(rows)


def _selection(gain_ci: tuple[float, float] = (-1.0, 4.0)) -> pd.DataFrame:
    base = {
        "shift": "all",
        "level": "overall",
        "oracle_adapter": "b",
        "oracle_accuracy": 0.8,
        "clean_pick_adapter": "a",
        "clean_pick_accuracy": 0.7,
        "regret_points": 2.0,
        "regret_ci_low": 0.0,
        "regret_ci_high": 5.0,
        "gain_vs_clean_points": 1.5,
        "gain_vs_clean_ci_low": gain_ci[0],
        "gain_vs_clean_ci_high": gain_ci[1],
    }
    return pd.DataFrame(
        [
            {**base, "method": "meta_regressor", "label": "Meta-regressor (XAI + confidence)",
             "picked_adapter": "c", "picked_true_accuracy": 0.78},
            {**base, "method": "clean_accuracy", "label": "Clean validation accuracy",
             "picked_adapter": "a", "picked_true_accuracy": 0.7},
        ]
    )  # fmt: skip


def _tables(**kw: object) -> dict[str, pd.DataFrame]:
    worst = pd.DataFrame(
        {
            "adapter_id": ["a", "b", "c"],
            "worst_corruption": ["gaussian_blur", "gaussian_blur", "contrast"],
            "worst_severity": ["heavy"] * 3,
            "max_drop_pct": [20.0, 81.1, 10.0],
        }
    )
    ranking = pd.DataFrame(
        {
            "ood_rank": [1, 2, 3],
            "adapter_id": ["a", "c", "b"],
            "adapter_rank": pd.array([4, 16, 32], dtype="Int64"),
            "ood_accuracy": [0.95, 0.89, 0.76],
            "clean_accuracy": [0.96, 0.97, 0.95],
            "gap_to_best_points": [0.0, 6.0, 19.0],
            "gap_to_best_ci_low": [float("nan"), 2.0, 15.0],
            "gap_to_best_ci_high": [float("nan"), 10.0, 23.0],
        }
    )
    tables = {
        "correlations": _correlations(),
        "classifier_comparison": _comparison(),
        "worst_corruption": worst,
        "adapter_ranking": ranking,
        "accuracy_estimation_summary": _estimation_summary(),
        "adapter_selection": _selection(),
    }
    tables.update(kw)  # type: ignore[arg-type]
    return tables


def test_best_predictor_sentence_follows_the_correlations() -> None:
    text = summary_report(_tables())
    assert "**insertion_auc**" in text and "r = +0.180" in text
    assert "Higher insertion_auc on the clean image goes with more correct" in text
    flipped = summary_report(_tables(correlations=_correlations(r_entropy=-0.30)))
    assert "**attn_entropy**" in flipped and "goes with fewer correct" in flipped
    weak = summary_report(_tables(correlations=_correlations(r_entropy=0.01, r_insertion=0.015)))
    assert "includes zero" in weak


def _baselines(
    gain_auc: tuple[float, float, float] = (0.03, 0.01, 0.05),
    gain_aurc: tuple[float, float, float] = (-0.02, -0.03, -0.01),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    def metric_cols(prefix: str, values: tuple[float, float, float]) -> dict:
        return {prefix: values[0], f"{prefix}_ci_low": values[1], f"{prefix}_ci_high": values[2]}

    methods = [
        ("max-softmax", "score", "", 0.66),
        ("meta:confidence", "learned", "RandomForest", 0.67),
        ("meta:xai", "learned", "RandomForest", 0.64),
        ("meta:xai+confidence", "learned", "RandomForest", 0.70),
    ]
    table = pd.DataFrame(
        [
            {
                "method": m,
                "kind": kind,
                "model": model,
                **metric_cols("auroc", (auc, auc - 0.02, auc + 0.02)),
                **metric_cols("aurc", (0.3, 0.28, 0.32)),
                **metric_cols("augrc", (0.1, 0.09, 0.11)),
                "n": 1000,
                "n_images": 50,
            }
            for m, kind, model, auc in methods
        ]
    )
    diffs = pd.DataFrame(
        [
            {
                "comparison": "meta:xai+confidence - meta:confidence",
                "model": "RandomForest",
                **metric_cols("auroc_diff", gain_auc),
                **metric_cols("aurc_diff", gain_aurc),
                **metric_cols("augrc_diff", (0.0, -0.01, 0.01)),
            },
            {
                "comparison": "meta:xai - max-softmax",
                "model": "RandomForest",
                **metric_cols("auroc_diff", (-0.02, -0.05, 0.01)),
                **metric_cols("aurc_diff", (0.01, -0.01, 0.03)),
                **metric_cols("augrc_diff", (0.0, -0.01, 0.01)),
            },
        ]
    )
    return table, diffs


def _with_baselines(**kw) -> dict[str, pd.DataFrame]:
    table, diffs = _baselines(**kw)
    return _tables(confidence_baselines=table, confidence_baseline_differences=diffs)


def test_reference_protocol_is_a_labelled_reproduction() -> None:
    rf = summary_report(_tables())
    assert "Reproduction of the reference protocol (leaky)" in rf
    assert "highest holdout ROC-AUC of the XAI meta-learners is RandomForest's, 0.720" in rf
    lr = summary_report(
        _tables(
            classifier_comparison=_comparison({"RandomForest": 0.70, "LogisticRegression": 0.75})
        )
    )
    assert "highest holdout ROC-AUC of the XAI meta-learners is LogisticRegression's" in lr
    assert "they are not the answer" in rf


def test_xai_added_value_verdict_follows_the_intervals() -> None:
    adds = summary_report(_with_baselines())
    assert "**XAI adds predictive power beyond confidence**" in adds and "+0.030" in adds
    assert "| meta:xai+confidence | meta-learner (RandomForest, grouped OOF) | 0.700" in adds
    none = summary_report(_with_baselines(gain_auc=(0.01, -0.01, 0.03), gain_aurc=(0, -0.01, 0.01)))
    assert "**No evidence that XAI adds beyond confidence**" in none
    worse = summary_report(
        _with_baselines(gain_auc=(-0.05, -0.08, -0.02), gain_aurc=(0.01, -0.01, 0.02))
    )
    assert "makes the confidence meta-learner worse** on AUROC (AURC: interval includes 0)" in worse
    aurc_only = summary_report(
        _with_baselines(gain_auc=(-0.003, -0.007, 0.001), gain_aurc=(0.008, 0.004, 0.013))
    )
    assert "worse** on AURC (AUROC: interval includes 0)" in aurc_only
    mixed = summary_report(
        _with_baselines(gain_auc=(0.02, 0.01, 0.03), gain_aurc=(0.008, 0.004, 0.013))
    )
    assert "**Mixed: adding XAI helps on AUROC and hurts on AURC**" in mixed
    assert "adds predictive power" not in mixed and "adds a little" not in mixed
    assert "- vs max-softmax: -0.020 [-0.050, +0.010] (not distinguishable)" in adds


def test_definitions_come_first_and_every_p_value_is_clustered() -> None:
    text = summary_report(_tables())
    assert text.index("## Definitions") < text.index("## Strongest XAI predictor")
    assert "p-values: tests on per-image means" in text


def test_leakage_gap_is_reported_from_the_numbers() -> None:
    clean = summary_report(_tables())
    assert "agrees within the tolerance with image-grouped CV" in clean
    leaky = summary_report(_tables(classifier_comparison=_comparison(cv_gap=0.08)))
    assert "Ungrouped CV overstates image-grouped CV: largest gap +0.080" in leaky


def test_corruption_adapters_and_estimation_sections() -> None:
    text = summary_report(_tables())
    assert (
        "By point estimate, **gaussian_blur** drops accuracy the most for 2 of 3 adapters" in text
    )
    assert "largest drop is 81.1%" in text
    assert "Most robust: **a** (every gap interval above 0); last by OOD accuracy: b, 19.0" in text
    ranking = _tables()["adapter_ranking"].assign(gap_to_best_ci_low=[float("nan"), -1.0, 15.0])
    tied = summary_report(_tables(adapter_ranking=ranking))
    assert "Most robust: not established: a is first but not separated from c" in tied
    assert "12 adapters in 6 config families" in text
    assert "| DoC | 6.00 [5.00, 7.00] | 12.00 [6.00, 18.00] | 0.50 [0.10, 0.80] | +2.00" in text
    assert "| Meta-regressor (XAI + confidence) | 4.00 [3.00, 5.00]; 0.50 |" in text  # contrast
    assert "better than every label-free estimator?** **Yes**" in text
    assert "makes no established difference" in text  # ablation interval includes zero
    assert "beat selecting by clean accuracy?** **Not established**" in text
    worse = summary_report(_tables(accuracy_estimation_summary=_estimation_summary((-3.0, -1.0))))
    assert "label-free estimator?** **No**: DoC reach a lower MAE" in worse
    unclear = summary_report(_tables(accuracy_estimation_summary=_estimation_summary((-1.0, 5.0))))
    assert "**Not established**: against DoC" in unclear
    # interval [-1, 5]: SE 6 / 3.92, detectable 2.8 x SE = 4.29 points
    assert "no difference larger than 4.29 points could be detected" in unclear
    # the ablation's [-0.5, 2.5]: 2.8 x 3 / 3.92 = 2.14
    assert "smallest detectable effect 2.14 points (80 % power, alpha 0.05, 2.8 x SE)" in text
    wins = summary_report(_tables(adapter_selection=_selection((0.5, 4.0))))
    assert "clean accuracy?** **Yes**: the gain interval is above 0" in wins


def test_baselines_are_no_label_free_estimator_and_get_their_own_verdict() -> None:
    base = _estimation_summary()
    const = base[base.method == "doc"].assign(
        method="mean_other_families",
        label="Baseline: mean OOD accuracy of the other families",
        mae_minus_meta_points=-0.5,
        mae_minus_meta_ci_low=-1.5,
        mae_minus_meta_ci_high=0.5,
    )
    text = summary_report(_tables(accuracy_estimation_summary=pd.concat([base, const])))
    assert "better than every label-free estimator?** **Yes**" in text  # DoC only
    assert "beat the trivial baselines" in text
    assert "is not separated from mean OOD accuracy of the other families" in text
    assert "-0.50 [-1.50, +0.50]" in text


def test_missing_tables_are_skipped() -> None:
    text = summary_report({"worst_corruption": _tables()["worst_corruption"]})
    assert "Accuracy drop per corruption" in text
    assert "Headline" not in text and "Reproduction" not in text


@pytest.mark.parametrize(
    ("d", "word"), [(0.1, "negligible"), (-0.3, "small"), (0.55, "medium"), (-1.2, "large")]
)
def test_effect_size_words(d: float, word: str) -> None:
    assert effect_size_word(d) == word


def test_report_on_real_gold_tables(gold_tables: dict[str, pd.DataFrame]) -> None:
    tables = gold_tables
    text = summary_report(tables)
    assert "**attn_entropy**" in text  # the planted predictor
    # the confidence features vary per (image, adapter) only, so ungrouped folds leak
    assert "Ungrouped CV overstates image-grouped CV" in text
    assert "**XAI adds predictive power beyond confidence**" in text  # planted in the XAI only


def test_no_accuracy_drop_names_no_worst_corruption() -> None:
    worst = _tables()["worst_corruption"].assign(max_drop_pct=[0.0, -1.5, 0.0])
    text = summary_report({"worst_corruption": worst})
    assert "No corruption lowered any adapter's accuracy" in text
    assert "drops accuracy the most" not in text


def test_quarantine_is_counted_by_reason() -> None:
    quarantine = pd.DataFrame(
        {"reason": ["conflicting_label", "conflicting_label", "truncated", "duplicate"]}
    )
    text = summary_report({**_tables(), "bronze_quarantine": quarantine})
    assert "4 inputs were quarantined: conflicting_label 2, duplicate 1, truncated 1." in text
    assert "Quarantined inputs" not in summary_report(_tables())


def test_detectable_effect_is_2_8_standard_errors() -> None:
    from xai_kedro.core.meta.report.formatting import detectable_effect, detectable_note

    assert detectable_effect(-1.96, 1.96) == pytest.approx(2.8)  # SE 1
    assert pd.isna(detectable_effect(float("nan"), 1.0)) and detectable_note(None, 1.0) == ""


def test_strongest_predictor_is_compared_by_its_interval():
    from xai_kedro.core.meta.report.summary import _stronger_words

    def row(lo: float, hi: float) -> pd.Series:
        return pd.Series({"pearson_ci_low": lo, "pearson_ci_high": hi})

    # |r| in [0.20, 0.30] against |r| in [0.05, 0.10] (a negative r): separated
    assert _stronger_words(row(-0.30, -0.20), row(0.05, 0.10)).startswith("stronger")
    assert _stronger_words(row(0.05, 0.10), row(-0.30, -0.20)).startswith("weaker")
    # an interval through 0 reaches |r| = 0.25: it overlaps [0.20, 0.30]
    assert _stronger_words(row(-0.30, -0.20), row(-0.10, 0.25)).startswith("not separated")
