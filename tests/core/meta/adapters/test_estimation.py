"""Per-adapter accuracy estimation: families and folds, the regressor, the long and summary
tables on a synthetic zoo whose robustness is planted in one XAI feature."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from xai_kedro.core.common.settings import SettingsError
from xai_kedro.core.meta.adapters import estimation
from xai_kedro.core.meta.adapters import estimators as E
from xai_kedro.core.meta.adapters.estimation import (
    BASELINE_CONSTANT,
    BASELINE_LINE,
    ESTIMATION_COLUMNS,
    METHODS,
    accuracy_estimation,
    adapter_families,
    aggregate_adapter_features,
    family_baseline_predictions,
    family_folds,
    family_grouped_predictions,
    label_free_profile_features,
    ood_accuracy_by_condition,
    ood_accuracy_per_adapter,
)
from xai_kedro.core.meta.adapters.estimation_summary import (
    SUMMARY_COLUMNS,
    _rank_corr,
    _scores,
    estimation_summary,
)
from xai_kedro.core.meta.adapters.label_free import label_free_predictions
from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.prediction.features import TARGET_FOLLOWING

CORRUPTIONS = {"noise": 1.0, "blur": 0.6}
SEVERITIES = ("1", "2", "3")
FAST = EstimationSettings(regressor={"n_estimators": 25}, n_bootstrap=100)


def _prediction_rows(
    rng: np.random.Generator, labels: np.ndarray, margin: float, spread: float
) -> dict[str, np.ndarray | list]:
    """Logits with the true class ``margin`` ahead on average, and the columns derived."""
    n, k = labels.size, 4
    logits = rng.normal(0.0, spread, (n, k))
    logits[np.arange(n), labels] += margin
    p = softmax(logits, axis=1)
    top2 = np.sort(p, axis=1)[:, -2:]
    pred = p.argmax(axis=1)
    return {
        "label": labels,
        "pred": pred,
        "confidence": top2[:, 1],
        "margin": top2[:, 1] - top2[:, 0],
        "pred_entropy": -(p * np.log(p)).sum(axis=1),
        "is_correct": pred == labels,
        "logits": list(logits),
    }


def make_zoo(
    n_families: int = 6, seeds: int = 2, n_images: int = 80, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(silver_xai, silver_ood, silver_source) of a zoo of ``n_families`` configs x ``seeds``.

    Each family has a clean margin and a fragility; a fragile adapter loses more margin under
    shift and has a higher clean attention entropy, so the XAI profile carries the signal.
    """
    rng = np.random.default_rng(seed)
    xai, ood, src = [], [], []
    images = [f"img{i:03d}" for i in range(n_images)]
    labels = rng.integers(0, 4, n_images)
    val_images = [f"val{i:03d}" for i in range(n_images)]
    val_labels = rng.integers(0, 4, n_images)
    for f in range(n_families):
        margin_f, fragility_f = rng.uniform(2.5, 4.0), rng.uniform(0.2, 1.2)
        for s in range(seeds):
            adapter = f"fam{f}_s{s}"
            margin = margin_f + rng.normal(0, 0.1)
            fragility = fragility_f + rng.normal(0, 0.03)
            clean = _prediction_rows(rng, labels, margin, 1.0)
            xai.append(
                pd.DataFrame(
                    {
                        "image_id": images,
                        "adapter_id": adapter,
                        **clean,
                        "attn_entropy": 0.4 + 0.4 * fragility + rng.normal(0, 0.03, n_images),
                        "gini": rng.uniform(0.2, 0.6, n_images),
                        "deletion_auc": rng.uniform(0.2, 0.6, n_images),
                        "insertion_auc": rng.uniform(0.5, 0.9, n_images),
                    }
                ).drop(columns="logits")
            )
            val = _prediction_rows(rng, val_labels, margin, 1.0)
            src.append(
                pd.DataFrame({"image_id": val_images, "adapter_id": adapter, **val}).assign(
                    corruption="clean", severity="none"
                )
            )
            for level in (1, 2):  # source-side synthetic shifts for the calibrations
                shifted = _prediction_rows(rng, val_labels, margin - 0.8 * level * fragility, 1.2)
                src.append(
                    pd.DataFrame({"image_id": val_images, "adapter_id": adapter, **shifted}).assign(
                        corruption="source_jitter", severity=str(level)
                    )
                )
            for corruption, strength in CORRUPTIONS.items():
                for level, severity in enumerate(SEVERITIES, start=1):
                    loss = strength * level * fragility
                    rows = _prediction_rows(rng, labels, margin - loss, 1.0 + 0.1 * level)
                    ood.append(
                        pd.DataFrame({"image_id": images, "adapter_id": adapter, **rows}).assign(
                            corruption=corruption, severity=severity
                        )
                    )
    return (
        pd.concat(xai, ignore_index=True),
        pd.concat(ood, ignore_index=True),
        pd.concat(src, ignore_index=True),
    )


@pytest.fixture(scope="module")
def zoo() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return make_zoo()


@pytest.fixture(scope="module")
def table(zoo: tuple[pd.DataFrame, ...]) -> pd.DataFrame:
    xai, ood, src = zoo
    return accuracy_estimation(xai, ood, src, settings=FAST, seed=0)


def test_families_strip_the_seed_token() -> None:
    fam = adapter_families(
        ["r8_qv_s0", "r8_qv_s1", "r16_a32_dora_rs_s2_lr0.001", "probe"], r"_s[0-9]+(?=_|$)"
    )
    assert list(fam) == ["r8_qv", "r8_qv", "r16_a32_dora_rs_lr0.001", "probe"]
    with pytest.raises(ValueError, match="family_pattern"):
        adapter_families(["a"], "(")


def test_family_folds_never_split_a_family() -> None:
    rng = np.random.default_rng(3)
    families = rng.choice(["a", "b", "c", "d", "e"], size=40)
    folds = family_folds(families)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(40))  # every adapter predicted exactly once
    for train, test in folds:
        assert set(families[train]).isdisjoint(families[test])
        assert len(set(families[test])) == 1


def test_grouped_regressor_never_trains_on_a_sibling(monkeypatch: pytest.MonkeyPatch) -> None:
    fits: list[np.ndarray] = []

    class Recording(estimation.RandomForestRegressor):
        def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: None = None) -> Recording:
            fits.append(np.asarray(X)[:, 0].copy())
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(estimation, "RandomForestRegressor", Recording)
    families = np.array(["a", "a", "b", "b", "c"])
    X = np.arange(5.0)[:, None]  # the row index identifies the adapter
    y = np.array([0.9, 0.9, 0.5, 0.5, 0.1])
    pred = family_grouped_predictions(
        X, y, families, EstimationSettings(regressor={"n_estimators": 10})
    )
    assert len(fits) == 3
    for fitted, (_, test) in zip(fits, family_folds(families), strict=True):
        assert set(fitted.astype(int)).isdisjoint(test)
    # a forest predicts averages of training targets: family a (0.9) cannot be reached if its
    # siblings were really held out, and multi-output targets keep their shape
    assert np.all(pred[:2] <= 0.5 + 1e-12)
    multi = family_grouped_predictions(X, np.c_[y, 1 - y], families, FAST)
    assert multi.shape == (5, 2)


def test_grouped_regressor_needs_two_families(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        pred = family_grouped_predictions(np.zeros((4, 1)), np.ones(4), ["a"] * 4, FAST)
    assert np.isnan(pred).all() and "families" in caplog.text


def test_trivial_baselines_by_hand() -> None:
    # families a (2 adapters), b, c; one condition. Held-out a: the others are b (clean 0.8,
    # OOD 0.5) and c (clean 0.6, OOD 0.3): mean 0.4, line y = x - 0.3.
    clean = np.array([0.9, 0.7, 0.8, 0.6])
    y = np.array([[0.7], [0.2], [0.5], [0.3]])
    out = family_baseline_predictions(clean, y, ["a", "a", "b", "c"])
    assert out[BASELINE_CONSTANT][:2, 0] == pytest.approx([0.4, 0.4])
    assert out[BASELINE_LINE][:2, 0] == pytest.approx([0.6, 0.4])
    # held-out c: the others are a_s0, a_s1, b: mean 1.4 / 3; equal clean accuracies: the mean
    flat = family_baseline_predictions(np.full(4, 0.5), y, ["a", "a", "b", "c"])
    assert flat[BASELINE_LINE][3, 0] == pytest.approx(1.4 / 3)
    assert out[BASELINE_CONSTANT][3, 0] == pytest.approx(1.4 / 3)
    # below min_adapters or with one family: NaN, like the meta-regressor
    assert np.isnan(family_baseline_predictions(clean, y, ["a"] * 4)[BASELINE_LINE]).all()
    assert np.isnan(family_baseline_predictions(clean[:2], y[:2], ["a", "b"])[BASELINE_LINE]).all()


def test_label_following_curves_never_enter_the_profile(
    zoo: tuple[pd.DataFrame, ...], caplog: pytest.LogCaptureFixture
) -> None:
    xai = zoo[0]
    assert label_free_profile_features(xai.assign(target_class=xai["pred"])) == [
        "attn_entropy",
        "gini",
        "deletion_auc",
        "insertion_auc",
    ]
    by_label = xai.assign(target_class=xai["label"])  # xai_silver.engine.target: label
    with caplog.at_level(logging.WARNING):
        assert label_free_profile_features(by_label) == ["attn_entropy", "gini"]
    assert "follow the true label" in caplog.text
    with pytest.raises(ValueError, match="leak"):
        label_free_profile_features(by_label, ["gini", "deletion_auc"])
    seen: list[list[str]] = []
    real = estimation._columns_of

    def spy(agg: pd.DataFrame, features: list[str]) -> list[str]:
        seen.append(list(features))
        return real(agg, features)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(estimation, "_columns_of", spy)
        accuracy_estimation(by_label, zoo[1], zoo[2], settings=replace(FAST, estimators=("ac",)))
    assert seen and not any(f in TARGET_FOLLOWING for fs in seen for f in fs)


def test_aggregate_adapter_features(zoo: tuple[pd.DataFrame, ...]) -> None:
    xai = zoo[0]
    agg = aggregate_adapter_features(xai, ["attn_entropy", "gini"], (10, 50, 90))
    one = xai[xai.adapter_id == "fam2_s1"]
    row = agg.set_index("adapter_id").loc["fam2_s1"]
    assert row["attn_entropy_mean"] == pytest.approx(one.attn_entropy.mean())
    assert row["gini_std"] == pytest.approx(one.gini.std(ddof=1))
    assert row["attn_entropy_p90"] == pytest.approx(np.quantile(one.attn_entropy, 0.9))
    assert row["clean_accuracy"] == pytest.approx(one.is_correct.mean())
    assert row["n_images"] == len(one)


def test_measured_accuracy_tables(zoo: tuple[pd.DataFrame, ...]) -> None:
    ood = zoo[1]
    per = ood_accuracy_per_adapter(ood)
    assert per["fam0_s0"] == pytest.approx(ood[ood.adapter_id == "fam0_s0"].is_correct.mean())
    cond = ood_accuracy_by_condition(ood)
    assert len(cond) == 12 * 6 and (cond["n"] == 80).all()


def test_estimation_table_is_complete_and_consistent(
    zoo: tuple[pd.DataFrame, ...], table: pd.DataFrame
) -> None:
    assert list(table.columns) == list(ESTIMATION_COLUMNS)
    assert set(table["method"]) == set(METHODS)
    assert not table.duplicated(["adapter_id", "method", "shift"]).any()
    assert set(table["level"]) == {"condition", "corruption", "overall"}
    per_method = table.groupby("method").size()
    assert (per_method == 12 * (6 + 2 + 1)).all()  # 12 adapters x (6 conditions + 2 + all)
    overall = table[(table.level == "overall") & (table.method == "ac")].set_index("adapter_id")
    measured = zoo[1].groupby("adapter_id")["is_correct"].mean()
    assert overall["measured_accuracy"].to_dict() == pytest.approx(measured.to_dict())
    ac = zoo[1].groupby("adapter_id")["confidence"].mean()
    assert overall["predicted_accuracy"].to_dict() == pytest.approx(ac.to_dict())
    src = zoo[2][zoo[2].corruption == "clean"].groupby("adapter_id")["is_correct"].mean()
    assert overall["clean_accuracy"].to_dict() == pytest.approx(src.to_dict())
    expected = (table["predicted_accuracy"] - table["measured_accuracy"]).abs() * 100
    assert table["abs_error_points"].to_numpy() == pytest.approx(expected.to_numpy())
    assert table["predicted_accuracy"].notna().all()
    assert set(table["family"]) == {f"fam{f}" for f in range(6)}


def test_corruption_rows_are_means_of_their_conditions(table: pd.DataFrame) -> None:
    cond = table[(table.level == "condition") & (table.corruption == "blur")]
    mean = cond.groupby(["method", "adapter_id"])["predicted_accuracy"].mean()
    blur = table[table["shift"] == "blur"].set_index(["method", "adapter_id"])
    assert blur["predicted_accuracy"].to_dict() == pytest.approx(mean.to_dict())


def test_planted_signal_favours_the_xai_regressor(table: pd.DataFrame) -> None:
    overall = table[table.level == "overall"]
    mae = overall.groupby("method")["abs_error_points"].mean()
    # robustness is planted in attn_entropy only: the profile that sees it must beat the
    # confidence-only ablation, which sees clean confidence (uninformative about fragility)
    assert mae["meta_regressor_xai"] < mae["meta_regressor_conf"]


def test_summary_has_intervals_and_paired_differences(table: pd.DataFrame) -> None:
    summary = estimation_summary(table, FAST, seed=0)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert set(summary["shift"]) == {"all", "noise", "blur"}
    assert summary["level"].iloc[0] == "overall"  # overall rows first
    row = summary[(summary["method"] == "doc") & (summary["shift"] == "all")].iloc[0]
    rows = table[(table.method == "doc") & (table["shift"] == "all")]
    assert row["mae_points"] == pytest.approx(rows["abs_error_points"].mean())
    assert row["max_abs_error_points"] == pytest.approx(rows["abs_error_points"].max())
    assert row["n_adapters"] == 12 and row["n_families"] == 6
    assert row["mae_ci_low"] <= row["mae_points"] <= row["mae_ci_high"]
    meta = table[(table.method == "meta_regressor") & (table["shift"] == "all")]
    assert row["mae_minus_meta_points"] == pytest.approx(
        rows["abs_error_points"].mean() - meta["abs_error_points"].mean()
    )
    self_row = summary[(summary.method == "meta_regressor") & (summary["shift"] == "all")]
    assert self_row["mae_minus_meta_points"].iloc[0] == pytest.approx(0.0)
    assert summary["spearman_rho"].between(-1, 1).all()


def test_without_source_table_only_the_clean_test_rows_serve(
    zoo: tuple[pd.DataFrame, ...], caplog: pytest.LogCaptureFixture
) -> None:
    xai, ood, _ = zoo
    with caplog.at_level(logging.WARNING):
        out = accuracy_estimation(xai, ood.drop(columns="logits"), None, settings=FAST)
    methods = set(out["method"])
    assert {"ac", "doc", "atc_mc", "atc_ne", "aline_d", "meta_regressor"} <= methods
    assert not methods & {"cot", "nuclear_norm", "mano"}
    assert "no logits" in caplog.text


def test_label_free_predictions_match_direct_calls(zoo: tuple[pd.DataFrame, ...]) -> None:
    _, ood, src = zoo
    one = ood[ood.adapter_id == "fam1_s0"]
    source = src[(src.adapter_id == "fam1_s0") & (src.corruption == "clean")]
    out = label_free_predictions(one, source, None, ["atc_mc"])
    tgt = one[(one.corruption == "noise") & (one.severity == "2")]
    direct = E.atc_predict(source.confidence, source.is_correct, tgt.confidence)
    got = out[(out.corruption == "noise") & (out.severity == "2")]["predicted_accuracy"]
    assert got.iloc[0] == pytest.approx(direct)


def test_bad_settings_name_themselves(zoo: tuple[pd.DataFrame, ...]) -> None:
    xai, ood, src = zoo
    with pytest.raises(SettingsError, match="meta_learning.accuracy_estimation.n_trees"):
        EstimationSettings.from_params({"n_trees": 3})
    with pytest.raises(SettingsError, match="estimators: unknown label-free estimator 'oracle'"):
        EstimationSettings.from_params({"estimators": ["oracle"]})
    with pytest.raises(ValueError, match="clean_shift"):
        accuracy_estimation(xai, ood, src, settings=replace(FAST, clean_shift="pristine"))


def test_calibration_leaves_out_the_target_corruption(zoo: tuple[pd.DataFrame, ...]) -> None:
    _, ood, src = zoo
    one = ood[ood.adapter_id == "fam3_s1"]
    rows = src[src.adapter_id == "fam3_s1"].copy()
    # the level-2 source shift pretends to be "noise": a noise target must not calibrate on it
    rows.loc[rows.severity == "2", "corruption"] = "noise"
    clean, shifted = rows[rows.corruption == "clean"], rows[rows.corruption != "clean"]
    out = label_free_predictions(one, clean, shifted, ["nuclear_norm"])
    sets = {c: E.PredictionSet.from_rows(g) for c, g in rows.groupby("corruption")}

    def expected(target: pd.DataFrame, calibration: list) -> float:
        return E.ESTIMATORS.get("nuclear_norm").fn(
            sets["clean"], E.PredictionSet.from_rows(target, labelled=False), calibration
        )

    for corruption, cal in (
        ("noise", [sets["clean"], sets["source_jitter"]]),
        ("blur", [sets["clean"], sets["source_jitter"], sets["noise"]]),
    ):
        tgt = one[(one.corruption == corruption) & (one.severity == "3")]
        got = out[(out.corruption == corruption) & (out.severity == "3")]["predicted_accuracy"]
        assert got.iloc[0] == pytest.approx(expected(tgt, cal)), corruption
    kept = label_free_predictions(
        one, clean, shifted, ["nuclear_norm"], exclude_target_corruption=False
    )
    tgt = one[(one.corruption == "noise") & (one.severity == "3")]
    got = kept[(kept.corruption == "noise") & (kept.severity == "3")]["predicted_accuracy"]
    assert got.iloc[0] == pytest.approx(
        expected(tgt, [sets["clean"], sets["source_jitter"], sets["noise"]])
    )


def test_vectorised_scores_equal_the_plain_bootstrap() -> None:
    """The summary's bootstrap runs every replicate as one row of an array: same intervals as
    calling the statistic once per resample, ties and constant resamples included."""
    from scipy import stats as sps

    from xai_kedro.core.meta.stats.bootstrap import bootstrap_ci

    rng = np.random.default_rng(0)
    measured = rng.integers(0, 4, 12) / 4.0  # ties, as in a bootstrap resample
    pred, meta = measured + rng.normal(0, 0.1, 12), measured + rng.normal(0, 0.2, 12)
    a = rng.integers(0, 5, 30).astype(float)
    b = a + rng.normal(0, 2, 30)
    assert _rank_corr(a, b) == pytest.approx(sps.spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(_rank_corr(np.ones(4), np.arange(4.0)))

    def plain(p, m, y):
        return _scores(p[None], m[None], y[None])[0]

    families = np.repeat(np.arange(4), 3)
    for groups in (None, families, np.r_[families[:-1], 9]):  # equal and unequal family sizes
        boot = {"n_boot": 300, "alpha": 0.05, "seed": 2, "groups": groups}
        fast = bootstrap_ci(_scores, pred, meta, measured, vectorized=True, **boot)
        slow = bootstrap_ci(plain, pred, meta, measured, **boot)
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
