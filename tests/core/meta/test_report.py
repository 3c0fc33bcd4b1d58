"""The Markdown report is written from the numbers: change a number, the sentence changes."""

from __future__ import annotations

import pandas as pd
import pytest

from xai_kedro.core.meta import gold
from xai_kedro.core.meta.report import effect_size_word, summary_report

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


def _tables(**kw: object) -> dict[str, pd.DataFrame]:
    estimation = pd.DataFrame(
        {
            "adapter_id": ["a", "b", "c"],
            "meta_regressor_abs_err": [1.0, 2.0, 3.0],
            "atc_abs_err": [4.0, 5.0, 6.0],
            "atc_ne_abs_err": [4.0, 4.0, 4.0],
            "doc_abs_err": [0.5, 0.5, 0.5],
        }
    )
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
        }
    )
    tables = {
        "correlations": _correlations(),
        "classifier_comparison": _comparison(),
        "worst_corruption": worst,
        "adapter_ranking": ranking,
        "accuracy_estimation": estimation,
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


def test_winning_model_changes_the_sentence() -> None:
    rf = summary_report(_tables())
    assert "holdout split the best model is **RandomForest**" in rf
    lr = summary_report(
        _tables(
            classifier_comparison=_comparison({"RandomForest": 0.70, "LogisticRegression": 0.75})
        )
    )
    assert "holdout split the best model is **LogisticRegression**" in lr
    assert "the best is the same model" in lr  # LR also wins the grouped CV here
    assert "the best is **LogisticRegression**" in rf


def test_xai_added_value_verdict_follows_the_ci() -> None:
    adds = summary_report(_tables())
    assert "XAI features **add** predictive power" in adds and "+0.030" in adds
    none = summary_report(_tables(classifier_comparison=_comparison(gain_ci=(0.01, -0.01, 0.03))))
    assert "**no evidence that XAI adds**" in none and "**add**" not in none
    worse = summary_report(
        _tables(classifier_comparison=_comparison(gain_ci=(-0.05, -0.08, -0.02)))
    )
    assert "**lowers** the AUC" in worse


def test_leakage_caveat_only_when_ungrouped_cv_is_higher() -> None:
    clean = summary_report(_tables())
    assert "Caveat (leakage)" not in clean and "no sign of leakage" in clean
    leaky = summary_report(_tables(classifier_comparison=_comparison(cv_gap=0.08)))
    assert "Caveat (leakage)" in leaky and "by up to 0.080" in leaky


def test_corruption_adapters_and_estimation_sections() -> None:
    text = summary_report(_tables())
    assert "**gaussian_blur** is the most damaging corruption for 2 of 3 adapters" in text
    assert "largest drop is 81.1%" in text
    assert "Most robust: **a**; least robust: **b** (19.0 points apart)" in text
    assert "Lowest error: **DoC**" in text
    other = _tables()["accuracy_estimation"].assign(doc_abs_err=[9.0, 9.0, 9.0])
    assert "Lowest error: **Meta-regressor (LOAO RF)**" in summary_report(
        _tables(accuracy_estimation=other)
    )


def test_missing_tables_are_skipped() -> None:
    text = summary_report({"worst_corruption": _tables()["worst_corruption"]})
    assert "Worst corruption" in text and "Meta-learners" not in text


@pytest.mark.parametrize(
    ("d", "word"), [(0.1, "negligible"), (-0.3, "small"), (0.55, "medium"), (-1.2, "large")]
)
def test_effect_size_words(d: float, word: str) -> None:
    assert effect_size_word(d) == word


def test_report_on_real_gold_tables(silver: tuple[pd.DataFrame, ...]) -> None:
    xai, ood, zoo = silver
    fast = {
        "models": {
            "RandomForest": {"n_estimators": 10, "max_depth": 4},
            "XGBoost": {"n_estimators": 10},
            "XGBoost_Tuned": {"n_estimators": 10},
        },
        "model_names": ["RandomForest", "XGBoost", "LogisticRegression", "XGBoost_Tuned"],
        "n_bootstrap": 50,
        "permutation_repeats": 2,
    }
    tables = gold.build_gold_tables(xai, ood, zoo, fast, {"regressor": {"n_estimators": 10}})
    text = summary_report(tables)
    assert "**attn_entropy**" in text  # the planted predictor
    # the confidence features vary per (image, adapter) only, so ungrouped folds leak
    assert "Caveat (leakage)" in text
    assert "XAI features **add**" in text


def test_no_accuracy_drop_names_no_worst_corruption() -> None:
    worst = _tables()["worst_corruption"].assign(max_drop_pct=[0.0, -1.5, 0.0])
    text = summary_report({"worst_corruption": worst})
    assert "No corruption lowered any adapter's accuracy" in text
    assert "most damaging" not in text
