"""Which explainer's XAI profile predicts robustness best: Gold `explainer_features`.

`silver_xai` holds the metrics of `engine.explainer`; `silver_xai_explainers` the same metrics
under the further explainers of `xai_silver.profile_explainers`. For each explainer chosen in
parameters, its deployable (label-free) XAI features alone and with the clean-image confidence
baselines; with several explainers also all of them together; and the confidence set alone. One
meta-learner (parameters), the grouped protocol only: StratifiedGroupKFold by image, the folds
of `compare_classifiers` (same rows, groups and seed), so the primary explainer's XAI set here
scores what `classifier_comparison` reports for it. Each row holds the pooled out-of-fold AUROC
with an image-clustered bootstrap interval and two paired differences with intervals: against
the confidence set, and against the best single explainer of the same kind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.meta.prediction.comparison import _check_features, _cv_auc, grouped_folds
from xai_kedro.core.meta.prediction.features import (
    CONFIDENCE_FEATURES,
    GROUP,
    KEYS,
    TARGET,
    build_meta_dataset,
    deployable_xai_features,
    require_columns,
)
from xai_kedro.core.meta.prediction.learners import make_model
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings
from xai_kedro.core.meta.report.formatting import fmt, interval_sign
from xai_kedro.core.meta.stats.association import roc_auc
from xai_kedro.core.meta.stats.bootstrap import Resampling, bootstrap_auc_ci

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainerFeatureSettings(Settings):
    """Settings of Gold `explainer_features`.

    explainers: the explainers to compare; None = engine.explainer and every explainer in
        silver_xai_explainers.
    model: the meta-learner, a key of `meta_learning.meta_learners.models`.
    """

    PATH = "meta_learning.explainer_features"

    explainers: tuple[str, ...] | None = None
    model: str = "XGBoost"

    def __post_init__(self) -> None:
        if isinstance(self.explainers, str):
            raise ValueError(f"explainers must be a list of names, got {self.explainers!r}")
        if self.explainers is not None:
            object.__setattr__(self, "explainers", tuple(self.explainers))


ALL_EXPLAINERS = "all"
KINDS = ("xai", "xai+confidence", "confidence")
COLUMNS = (
    "feature_set",
    "kind",
    "explainer",
    "model",
    "n_rows",
    "n_images",
    "n_features",
    "features",
    "grouped_oof_auc",
    "grouped_oof_auc_ci_low",
    "grouped_oof_auc_ci_high",
    "gain_vs_confidence",
    "gain_vs_confidence_ci_low",
    "gain_vs_confidence_ci_high",
    "best_in_kind",
    "diff_vs_best",
    "diff_vs_best_ci_low",
    "diff_vs_best_ci_high",
    "rank_in_kind",
    "cv_scheme",
)


def explainer_column(metric: str, explainer: str) -> str:
    return f"{metric}@{explainer}"


def profiles_by_explainer(
    silver_xai: pd.DataFrame, silver_xai_explainers: pd.DataFrame, primary: str
) -> pd.DataFrame:
    """One row per (image, adapter) of `silver_xai`, the metrics of every explainer side by
    side as `metric@explainer`; an (image, adapter) missing under some explainer is an error."""
    metrics = [c for c in silver_xai.columns if c in silver_xai_explainers.columns]
    metrics = [c for c in metrics if c not in (*KEYS, "explainer", "target_class")]
    require_columns(silver_xai_explainers, [*KEYS, "explainer", *metrics], "silver_xai_explainers")
    if primary in set(silver_xai_explainers["explainer"]):
        raise ValueError(
            f"silver_xai_explainers repeats engine.explainer {primary!r}, whose rows are silver_xai"
        )
    long = pd.concat(
        [silver_xai[[*KEYS, *metrics]].assign(explainer=primary), silver_xai_explainers],
        ignore_index=True,
    )
    dup = long.duplicated([*KEYS, "explainer"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (image_id, adapter_id, explainer) rows")
    expected = pd.MultiIndex.from_frame(silver_xai[list(KEYS)])
    for name, part in silver_xai_explainers.groupby("explainer", sort=True):
        lacking = int((~expected.isin(pd.MultiIndex.from_frame(part[list(KEYS)]))).sum())
        if lacking:
            raise ValueError(
                f"{lacking} (image_id, adapter_id) pairs of silver_xai have no {name!r} profile "
                "in silver_xai_explainers; rerun the xai_silver pipeline"
            )
    wide = long.pivot(index=list(KEYS), columns="explainer", values=metrics)
    wide.columns = [explainer_column(m, e) for m, e in wide.columns]
    return wide.reset_index().sort_values(list(KEYS), ignore_index=True)


def resolve_explainers(
    requested: Sequence[str] | None, primary: str, profiled: set[str]
) -> list[str]:
    """The explainers to compare: `requested`, or engine.explainer then the profiled ones."""
    available = [primary, *sorted(profiled - {primary})]
    if requested is None:
        return available
    chosen = list(dict.fromkeys(requested))
    unknown = [e for e in chosen if e not in available]
    if unknown:
        raise ValueError(
            f"meta_learning.explainer_features.explainers names {unknown}, which have no profile; "
            f"profiled: {available} (add them to xai_silver.profile_explainers)"
        )
    if not chosen:
        raise ValueError("meta_learning.explainer_features.explainers is empty")
    return chosen


def feature_sets(
    explainers: Sequence[str], deployable: Sequence[str]
) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (kind, explainer, columns) for every set the table compares."""
    conf = list(CONFIDENCE_FEATURES)
    sets: dict[str, tuple[str, str, list[str]]] = {}
    groups = {e: [explainer_column(m, e) for m in deployable] for e in explainers}
    if len(explainers) > 1:
        groups[ALL_EXPLAINERS] = [c for e in explainers for c in groups[e]]
    for name, cols in groups.items():
        sets[f"xai[{name}]"] = ("xai", name, cols)
        sets[f"xai[{name}]+confidence"] = ("xai+confidence", name, [*cols, *conf])
    sets["confidence"] = ("confidence", "-", conf)
    return sets


def _wide_meta_dataset(
    silver_xai: pd.DataFrame,
    silver_xai_explainers: pd.DataFrame,
    silver_ood: pd.DataFrame,
    primary: str,
    explainers: Sequence[str],
) -> tuple[pd.DataFrame, dict[str, tuple[str, str, list[str]]]]:
    """The meta dataset with every chosen explainer's profile beside it, and the feature sets."""
    meta = build_meta_dataset(silver_xai, silver_ood)
    extra = silver_xai_explainers[silver_xai_explainers["explainer"].isin(explainers)]
    wide = profiles_by_explainer(silver_xai, extra, primary)
    meta_wide = meta.merge(wide, on=list(KEYS), how="left", validate="many_to_one")
    meta_wide.attrs = meta.attrs
    return meta_wide, feature_sets(explainers, deployable_xai_features(meta))


def _unscored_table(
    sets: Mapping[str, tuple[str, str, list[str]]],
    model: str,
    y: np.ndarray,
    groups: np.ndarray,
    scheme: str,
) -> pd.DataFrame:
    """One row per feature set with what it is; the scores are filled in by `_score_table`."""
    rows = [
        {
            "feature_set": name,
            "kind": kind,
            "explainer": explainer,
            "model": model,
            "n_rows": int(y.size),
            "n_images": int(pd.unique(groups).size),
            "n_features": len(cols),
            "features": ",".join(cols),
            "cv_scheme": scheme,
        }
        for name, (kind, explainer, cols) in sets.items()
    ]
    return pd.DataFrame(rows).reindex(columns=list(COLUMNS))


def explainer_feature_comparison(
    silver_xai: pd.DataFrame,
    silver_xai_explainers: pd.DataFrame,
    silver_ood: pd.DataFrame,
    primary: str,
    settings: ExplainerFeatureSettings | None = None,
    meta_learners: MetaLearnerSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Gold `explainer_features`: one row per feature set (module docstring)."""
    p = settings or ExplainerFeatureSettings()
    mp = meta_learners or MetaLearnerSettings()
    model = p.model
    if model not in mp.models:
        raise ValueError(f"explainer_features.model {model!r} not in {sorted(mp.models)}")
    explainers = resolve_explainers(p.explainers, primary, set(silver_xai_explainers["explainer"]))
    meta_wide, sets = _wide_meta_dataset(
        silver_xai, silver_xai_explainers, silver_ood, primary, explainers
    )
    y = meta_wide[TARGET].to_numpy(dtype=bool).astype(int)
    groups = meta_wide[GROUP].to_numpy()
    k = int(mp.cv_folds)
    scheme = f"grouped_cv: StratifiedGroupKFold({k}, groups={GROUP}), pooled out-of-fold scores"
    table = _unscored_table(sets, model, y, groups, scheme)
    try:
        folds = grouped_folds(groups, k, y, seed)
    except ValueError as exc:
        logger.warning("explainer_features: grouped CV impossible (%s); AUCs are NaN", exc)
        return table
    hp = mp.models[model]
    oof: dict[str, np.ndarray] = {}
    for name, (_, _, cols) in sets.items():
        X = _check_features(meta_wide, cols, name)
        _, _, oof[name] = _cv_auc(lambda: make_model(model, hp, seed, mp.n_jobs), X, y, folds)
        logger.info(
            "explainer features %s (%s): grouped OOF AUC %.3f", name, model, roc_auc(y, oof[name])
        )
    return _score_table(table, oof, y, groups, mp.resampling(seed))


def _score_table(
    table: pd.DataFrame,
    oof: Mapping[str, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    boot: Resampling,
) -> pd.DataFrame:
    table = table.copy()
    table["best_in_kind"] = table["best_in_kind"].astype(object)
    auc = {name: roc_auc(y, score) for name, score in oof.items()}
    table["grouped_oof_auc"] = table["feature_set"].map(auc)
    for i, name in enumerate(table["feature_set"]):
        low, high = bootstrap_auc_ci(y, oof[name], resampling=boot, groups=groups)
        table.loc[i, ["grouped_oof_auc_ci_low", "grouped_oof_auc_ci_high"]] = low, high
        if name != "confidence":
            table.loc[i, "gain_vs_confidence"] = auc[name] - auc["confidence"]
            low, high = bootstrap_auc_ci(
                y, oof[name], oof["confidence"], resampling=boot, groups=groups
            )
            table.loc[i, ["gain_vs_confidence_ci_low", "gain_vs_confidence_ci_high"]] = low, high
    single = table[(table["kind"] != "confidence") & (table["explainer"] != ALL_EXPLAINERS)]
    for kind, part in single.groupby("kind", sort=False):
        ordered = part.sort_values(["grouped_oof_auc", "explainer"], ascending=[False, True])
        best = ordered["feature_set"].iloc[0]
        in_kind = table.index[table["kind"] == kind]
        table.loc[in_kind, "best_in_kind"] = best
        ranks = {name: r for r, name in enumerate(ordered["feature_set"], start=1)}
        table.loc[in_kind, "rank_in_kind"] = table.loc[in_kind, "feature_set"].map(ranks)
        for i in in_kind:
            name = table.loc[i, "feature_set"]
            table.loc[i, "diff_vs_best"] = auc[name] - auc[best]
            if name != best:
                low, high = bootstrap_auc_ci(
                    y, oof[name], oof[best], resampling=boot, groups=groups
                )
                table.loc[i, ["diff_vs_best_ci_low", "diff_vs_best_ci_high"]] = low, high
    return table


def _auc_text(row: pd.Series) -> str:
    return (
        f"{fmt(row['grouped_oof_auc'])} [{fmt(row['grouped_oof_auc_ci_low'])}, "
        f"{fmt(row['grouped_oof_auc_ci_high'])}]"
    )


def _diff_text(row: pd.Series, column: str) -> str:
    return (
        f"{fmt(row[column], '+.3f')} [{fmt(row[f'{column}_ci_low'], '+.3f')}, "
        f"{fmt(row[f'{column}_ci_high'], '+.3f')}]"
    )


def _ranking_lines(single: pd.DataFrame) -> list[str]:
    """Which single explainer predicts best, and whether its lead is outside the intervals."""
    best = single.iloc[0]
    lines = [
        f"Label-free XAI features of each explainer alone, {best['model']}, grouped by image "
        f"({int(best['n_images'])} images, {int(best['n_rows'])} OOD predictions); "
        "pooled out-of-fold AUROC of OOD correctness with 95% image-bootstrap intervals."
    ]
    if len(single) == 1:
        return [*lines, f"Only {best['explainer']} was profiled: AUROC {_auc_text(best)}."]
    runner = single.iloc[1]
    sign = interval_sign(runner["diff_vs_best_ci_low"], runner["diff_vs_best_ci_high"])
    verdict = (
        f"**{best['explainer']}** predicts best, ahead of every other explainer"
        if (single.iloc[1:]["diff_vs_best_ci_high"] < 0).all()
        else f"{best['explainer']} scores highest, but its lead over {runner['explainer']} "
        "is within the interval, so the explainers are not separated here"
    )
    if sign < 0 and not (single.iloc[1:]["diff_vs_best_ci_high"] < 0).all():
        verdict = (
            f"{best['explainer']} scores highest and beats {runner['explainer']}, but not "
            "every other explainer outside the interval"
        )
    lines.append(
        f"{verdict}: AUROC {_auc_text(best)}; {runner['explainer']} "
        f"{_auc_text(runner)}, difference {_diff_text(runner, 'diff_vs_best')}."
    )
    return lines


def _confidence_lines(scored: pd.DataFrame, model: str) -> list[str]:
    """What the best XAI + confidence set adds to the confidence set alone."""
    with_conf = scored[scored["kind"] == "xai+confidence"].set_index("explainer")
    conf = scored[scored["kind"] == "confidence"]
    if conf.empty or with_conf.empty:
        return []
    c = conf.iloc[0]
    gains = with_conf.sort_values("grouped_oof_auc", ascending=False)
    top = gains.iloc[0]
    added = interval_sign(top["gain_vs_confidence_ci_low"], top["gain_vs_confidence_ci_high"])
    word = {1: "adds to", 0: "adds nothing measurable to", -1: "does worse than"}[added]
    return [
        f"With the confidence baselines (alone: AUROC {_auc_text(c)}), the highest point "
        f"AUROC is xai[{gains.index[0]}]+confidence's (the sets' differences are in the table's "
        f"last column), which {word} confidence alone: gain "
        f"{_diff_text(top, 'gain_vs_confidence')}. These gains are {model} against {model} "
        "on the confidence features; whether XAI adds beyond the best confidence baseline "
        "is read from the confidence-baseline section."
    ]


def _table_lines(scored: pd.DataFrame) -> list[str]:
    lines = [
        "",
        "| feature set | AUROC [95% CI] | vs confidence | vs best of its kind |",
        "|---|---|---|---|",
    ]
    for _, r in scored.iterrows():
        vs_conf = "-" if r["kind"] == "confidence" else _diff_text(r, "gain_vs_confidence")
        if pd.isna(r["diff_vs_best"]):
            vs_best = "-"
        elif r["feature_set"] == r["best_in_kind"]:
            vs_best = "best"
        else:
            vs_best = _diff_text(r, "diff_vs_best")
        lines.append(f"| {r['feature_set']} | {_auc_text(r)} | {vs_conf} | {vs_best} |")
    return lines


def explainer_features_section(table: pd.DataFrame) -> list[str]:
    """Markdown lines: which explainer's profile predicts OOD correctness best, read from the
    intervals (a best explainer whose lead includes zero is reported as not separable)."""
    lines = ["## Which explainer's features predict robustness"]
    scored = table[table["grouped_oof_auc"].notna()]
    single = scored[(scored["kind"] == "xai") & (scored["explainer"] != ALL_EXPLAINERS)]
    if single.empty:
        return [*lines, "No explainer feature set could be scored (grouped CV impossible)."]
    single = single.sort_values("rank_in_kind")
    model = single.iloc[0]["model"]
    return [
        *lines,
        *_ranking_lines(single),
        *_confidence_lines(scored, model),
        *_table_lines(scored),
    ]
