"""Gold tables: columns, hand-computed degradation, worst corruption, rankings, plots."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from xai_kedro.core.meta import gold
from xai_kedro.core.meta.prediction.comparison import SEED_COLUMNS
from xai_kedro.core.meta.report import plots
from xai_kedro.core.meta.stats.bootstrap import Resampling

TEN = (
    "correlations",
    "classifier_comparison",
    "feature_importance",
    "adapter_summary",
    "degradation",
    "qualitative_summary",
    "quantitative_summary",
    "xai_feature_ranking",
    "adapter_ranking",
    "worst_corruption",
)


@pytest.fixture(scope="module")
def tables(gold_tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return gold_tables


def test_all_tables_have_the_reference_columns(tables: dict[str, pd.DataFrame]) -> None:
    estimation = {"accuracy_estimation", "accuracy_estimation_summary", "adapter_selection"}
    baselines = {"confidence_baselines", "confidence_baseline_differences"}
    assert set(TEN) | estimation | baselines | {"classifier_scores"} == set(tables)
    expected = {
        "correlations": [
            "feature",
            "pearson_r",
            "spearman_r",
            "point_biserial_r",
            "cohens_d",
            "separation_ratio",
            "mean_correct",
            "mean_wrong",
            "pearson_p",
            "pearson_ci_low",
            "pearson_ci_high",
            "cohens_d_ci_low",
        ],
        "classifier_comparison": [
            *SEED_COLUMNS,
            "feature_set",
            "grouped_cv_auc_mean",
            "cv_scheme",
            "auc_gain_vs_baseline",
        ],
        "feature_importance": [
            "feature",
            "xgb_importance",
            "rf_importance",
            "perm_importance",
            "perm_std",
            "lr_coef",
            "lr_odds_ratio",
        ],
        "adapter_summary": [
            "adapter_id",
            "adapter_rank",
            "accuracy",
            "mean_attn_entropy",
            "mean_gini",
            "mean_deletion_auc",
            "mean_insertion_auc",
            "std_attn_entropy",
            "clean_accuracy",
            "n_samples",
        ],
        "degradation": [
            "adapter_id",
            "adapter_rank",
            "corruption",
            "severity",
            "severity_value",
            "accuracy",
            "clean_accuracy",
            "drop_pct",
            "drop_points",
        ],
        "qualitative_summary": ["metric", "value"],
        "quantitative_summary": ["metric", "value"],
        "xai_feature_ranking": ["rank", "feature", "mean_rank"],
        "adapter_ranking": [
            "ood_rank",
            "adapter_id",
            "adapter_rank",
            "ood_accuracy",
            "clean_accuracy",
            "mean_attn_entropy",
            "gap_to_best_points",
            "gap_to_best_ci_low",
            "gap_to_best_ci_high",
        ],
        "worst_corruption": ["adapter_id", "adapter_rank", "worst_corruption", "max_drop_pct"],
    }
    for name, cols in expected.items():
        missing = [c for c in cols if c not in tables[name].columns]
        assert not missing, (name, missing)
        assert len(tables[name]) > 0, name
    comp = tables["classifier_comparison"]
    assert comp["feature_set"].iloc[0] == "xai"
    assert list(comp.columns[:8]) == list(SEED_COLUMNS)


def test_tables_are_parquet_safe(tables: dict[str, pd.DataFrame]) -> None:
    pytest.importorskip("pyarrow")
    for name, df in tables.items():
        buf = io.BytesIO()
        df.to_parquet(buf)
        back = pd.read_parquet(io.BytesIO(buf.getvalue()))
        assert back.shape == df.shape, name
    qual = tables["qualitative_summary"]
    assert qual["value"].map(type).eq(str).all()


def test_summary_tables_follow_the_numbers(tables: dict[str, pd.DataFrame]) -> None:
    qual = dict(zip(*tables["qualitative_summary"][["metric", "value"]].T.values, strict=True))
    corr = tables["correlations"]
    x = corr[corr.feature_group == "xai"]
    assert qual["Best XAI predictor"] == x.loc[x.pearson_r.abs().idxmax(), "feature"]
    assert qual["Best XAI predictor"] == "attn_entropy"  # the planted feature
    comp = tables["classifier_comparison"]
    cx = comp[comp.feature_set == "xai"]
    assert qual["Best meta-learner"] == cx.loc[cx.roc_auc.idxmax(), "model"]
    assert "XAI adds over confidence (AUC diff, 95% CI)" in qual
    quant = dict(zip(*tables["quantitative_summary"][["metric", "value"]].T.values, strict=True))
    assert quant["Adapters tested"] == "4" and quant["Corruption types"] == "3"
    assert float(quant["Max accuracy drop (%)"]) == pytest.approx(
        tables["degradation"]["drop_pct"].max(), abs=0.01
    )
    ranking = tables["xai_feature_ranking"]
    assert ranking["feature"].iloc[0] == "attn_entropy" and ranking["rank"].tolist()[0] == 1
    assert ranking["mean_rank"].is_monotonic_increasing


def _hand_case() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    xai = pd.DataFrame(
        {
            "image_id": ["i0", "i1", "i2", "i3"] * 2,
            "adapter_id": ["A"] * 4 + ["B"] * 4,
            "is_correct": [True] * 4 + [True, True, False, False],  # clean 1.0 and 0.5
            "attn_entropy": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            "gini": 0.5,
            "deletion_auc": 0.3,
            "insertion_auc": 0.8,
        }
    )
    rows = []
    # A: noise/shallow 3 of 4, noise/heavy 1 of 4, blur/heavy 2 of 4
    # B: noise/heavy 2 of 4, blur/heavy 1 of 4
    spec = {
        ("A", "gaussian_noise", "shallow", 15.0): [1, 1, 1, 0],
        ("A", "gaussian_noise", "heavy", 80.0): [1, 0, 0, 0],
        ("A", "gaussian_blur", "heavy", 6.0): [1, 1, 0, 0],
        ("B", "gaussian_noise", "heavy", 80.0): [1, 1, 0, 0],
        ("B", "gaussian_blur", "heavy", 6.0): [1, 0, 0, 0],
    }
    for (a, c, s, v), oks in spec.items():
        for i, ok in enumerate(oks):
            rows.append(
                {
                    "image_id": f"i{i}",
                    "adapter_id": a,
                    "corruption": c,
                    "severity": s,
                    "severity_value": v,
                    "is_correct": bool(ok),
                }
            )
    zoo = pd.DataFrame({"adapter_id": ["A", "B"], "rank": [4, 32]})
    return xai, pd.DataFrame(rows), zoo


def test_degradation_by_hand() -> None:
    xai, ood, zoo = _hand_case()
    d = gold.degradation(xai, ood, zoo).set_index(["adapter_id", "corruption", "severity"])
    a_noise_heavy = d.loc[("A", "gaussian_noise", "heavy")]
    assert a_noise_heavy["accuracy"] == 0.25 and a_noise_heavy["clean_accuracy"] == 1.0
    assert a_noise_heavy["drop_pct"] == pytest.approx(75.0)
    assert a_noise_heavy["drop_points"] == pytest.approx(75.0)
    b_blur = d.loc[("B", "gaussian_blur", "heavy")]
    assert b_blur["drop_pct"] == pytest.approx(50.0)  # (0.5 - 0.25) / 0.5
    assert b_blur["drop_points"] == pytest.approx(25.0)
    assert b_blur["adapter_rank"] == 32
    # severities of one corruption are ordered shallow -> heavy, not alphabetically
    a_noise = gold.degradation(xai, ood, zoo).query(
        "adapter_id == 'A' and corruption == 'gaussian_noise'"
    )
    assert list(a_noise["severity"]) == ["shallow", "heavy"]


def test_worst_corruption_picks_the_max() -> None:
    xai, ood, zoo = _hand_case()
    w = gold.worst_corruption(gold.degradation(xai, ood, zoo)).set_index("adapter_id")
    assert w.loc["A", "worst_corruption"] == "gaussian_noise"
    assert w.loc["A", "worst_severity"] == "heavy"
    assert w.loc["A", "max_drop_pct"] == pytest.approx(75.0)
    assert w.loc["B", "worst_corruption"] == "gaussian_blur"
    assert w.loc["B", "max_drop_pct"] == pytest.approx(50.0)


def test_adapter_summary_and_ranking_by_hand() -> None:
    xai, ood, zoo = _hand_case()
    s = gold.adapter_summary(xai, ood, zoo).set_index("adapter_id")
    assert s.loc["A", "accuracy"] == pytest.approx(6 / 12)
    assert s.loc["B", "accuracy"] == pytest.approx(3 / 8)
    assert s.loc["B", "mean_attn_entropy"] == pytest.approx(0.65)
    assert s.loc["A", "n_samples"] == 12 and s.loc["B", "adapter_rank"] == 32
    r = gold.adapter_ranking(gold.adapter_summary(xai, ood, zoo))
    assert list(r["adapter_id"]) == ["A", "B"] and list(r["ood_rank"]) == [1, 2]
    assert r["accuracy_gap_points"].iloc[1] == pytest.approx((0.5 - 3 / 8) * 100)
    # adapters missing from the manifest keep a NA rank instead of failing
    s2 = gold.adapter_summary(xai, ood, zoo.iloc[:1])
    assert s2.set_index("adapter_id")["adapter_rank"].isna().tolist() == [False, True]


def test_severity_rank() -> None:
    ranks = gold.severity_rank(pd.Series(["heavy", "shallow", "3", "medium", "odd"]))
    assert ranks.tolist()[:4] == [3, 1, 3, 2] and np.isnan(ranks.iloc[4])


def test_correlations_table_matches_stats(silver: tuple[pd.DataFrame, ...]) -> None:
    from xai_kedro.core.meta.prediction.features import build_meta_dataset

    meta = build_meta_dataset(silver[0], silver[1])
    corr = gold.correlations(meta, {"xai": ["attn_entropy", "gini"]}, Resampling(50, seed=0))
    r = np.corrcoef(meta.attn_entropy, meta.is_correct.astype(float))[0, 1]
    row = corr.set_index("feature").loc["attn_entropy"]
    assert row["pearson_r"] == pytest.approx(r)
    assert row["pearson_ci_low"] < r < row["pearson_ci_high"]
    assert row["cohens_d_ci_low"] < row["cohens_d"] < row["cohens_d_ci_high"]


def test_plots_return_labelled_figures(tables: dict[str, pd.DataFrame]) -> None:
    figs = {
        "corr": plots.correlation_bars(tables["correlations"]),
        "roc": plots.roc_curves(tables["classifier_scores"]),
        "roc_oof": plots.roc_curves(tables["classifier_scores"], split="grouped_oof"),
        "imp": plots.feature_importance_plot(tables["feature_importance"]),
        "heat": plots.degradation_heatmap(tables["degradation"]),
        "rank": plots.adapter_ranking_plot(tables["adapter_ranking"]),
        "est": plots.accuracy_estimation_plot(tables["accuracy_estimation"]),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), name
        fig.savefig(io.BytesIO(), format="png")
    assert len(figs["roc"].axes[0].lines) == 5  # four models + chance line
    assert len(figs["imp"].axes) == 3  # gain, impurity and accuracy drop on their own axes
    rank_ax = figs["rank"].axes[0]
    ticks = [t.get_text() for t in rank_ax.get_yticklabels()]
    best = tables["adapter_ranking"].sort_values("ood_accuracy", ascending=False)["adapter_id"]
    assert ticks == [f"{r}. {name}" for r, name in enumerate(best, 1)]  # most robust on top
    titles = [ax.get_title() for ax in figs["est"].axes]
    assert any(t.startswith("ATC-MC\nMAE") for t in titles)  # one panel per method


def test_adapter_ranking_stays_legible_for_a_large_zoo() -> None:
    """48 adapters: one tick row each, at least a 9-pt font's height apart (no overlap)."""
    rng = np.random.default_rng(0)
    ranking = pd.DataFrame(
        {
            "adapter_id": [f"r8_qv_lr0.001_s{i}" for i in range(48)],
            "clean_accuracy": rng.uniform(0.75, 0.82, 48),
            "ood_accuracy": rng.uniform(0.62, 0.67, 48),
        }
    )
    fig = plots.adapter_ranking_plot(ranking)
    fig.savefig(io.BytesIO(), format="png")
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 48
    rows_in = ax.get_position().height * fig.get_figheight() / 48
    assert rows_in * 72 >= 9
    low, high = ax.get_xlim()
    assert 0.55 < low < 0.62 and 0.82 < high < 0.9  # zoomed to the data


def test_plots_survive_empty_input() -> None:
    empty_scores = pd.DataFrame(
        columns=["feature_set", "model", "split", "row", "image_id", "y_true", "y_score"]
    )
    fig = plots.roc_curves(empty_scores)
    assert isinstance(fig, Figure)
    assert "no scores" in fig.axes[0].texts[0].get_text()


def test_gold_and_report_do_not_depend_on_the_order_of_the_silver_rows(silver, gold_tables):
    """The same Silver rows read back from a cluster in another order give identical Gold."""
    from tests.core.meta.conftest import GOLD_ESTIMATION_PARAMS, GOLD_META_PARAMS, GOLD_SEED
    from xai_kedro.core.meta.adapters.settings import EstimationSettings
    from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings
    from xai_kedro.core.meta.report.summary import summary_report

    xai, ood, zoo = silver
    shuffled = gold.build_gold_tables(
        xai.sample(frac=1.0, random_state=5),
        ood.sample(frac=1.0, random_state=6),
        zoo,
        MetaLearnerSettings.from_params(GOLD_META_PARAMS),
        EstimationSettings.from_params(GOLD_ESTIMATION_PARAMS),
        seed=GOLD_SEED,
    )
    assert sorted(gold_tables) == sorted(shuffled)
    for name in gold_tables:
        pd.testing.assert_frame_equal(
            gold_tables[name].reset_index(drop=True),
            shuffled[name].reset_index(drop=True),
            obj=name,
        )
    assert summary_report(gold_tables) == summary_report(shuffled)


def test_confidence_baselines_score_each_baseline_and_pair_the_differences(gold_tables):
    tables = gold_tables
    table = tables["confidence_baselines"]
    assert {"max-softmax", "margin", "predictive entropy", "energy"} <= set(table["method"])
    assert {"meta:xai", "meta:confidence", "meta:xai+confidence"} <= set(table["method"])
    assert table["model"][table["kind"] == "learned"].nunique() == 1  # one model, like for like
    for metric in ("auroc", "aurc", "augrc"):
        assert (table[f"{metric}_ci_low"] <= table[metric]).all()
        assert (table[metric] <= table[f"{metric}_ci_high"]).all()
    # fd-shifts' convention beside ours: O(1/n) apart on thousands of rows
    n = table["n"].astype(float)
    assert ((table["augrc"] - table["augrc_fd_shifts"]).abs() <= 1.0 / n).all()
    assert ((table["aurc"] - table["aurc_fd_shifts"]).abs() <= 1.0 / n).all()
    diffs = tables["confidence_baseline_differences"].set_index("comparison")
    xai_row = table.set_index("method").loc["meta:xai+confidence"]
    conf_row = table.set_index("method").loc["meta:confidence"]
    main = diffs.loc["meta:xai+confidence - meta:confidence"]
    assert main["auroc_diff"] == pytest.approx(xai_row["auroc"] - conf_row["auroc"])
    # the planted signal lives in attn_entropy, which confidence does not carry
    assert main["auroc_diff_ci_low"] > 0
