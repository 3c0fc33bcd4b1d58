"""Gold answers per shift family: does the framework's hypothesis hold under each family, and
does XAI add to the confidence baselines there?

The hypothesis: "a model that correctly focuses on the object (low deletion score, low attention
entropy, high object share) should degrade less when the background or image style changes".
The reference Gold tables answer for the reference corruption grid only (`family_rows`); these
tables repeat the questions for every family of `silver_ood` (`shift_families`), with the same
builders: `correlations` (image-clustered intervals, per-image p-values) for the hypothesis,
overall and per class, and `confidence_baselines` on image-grouped out-of-fold scores of one
cheap meta-learner for the headline. `family_estimation` repeats the adapter-level questions
(estimation MAE, selection regret) on each family's rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.meta.adapters.estimation import (
    BASELINE_CONSTANT,
    BASELINES,
    META_REGRESSOR,
    METHODS,
    accuracy_estimation,
    overall_first,
)
from xai_kedro.core.meta.adapters.estimation_summary import SUMMARY_COLUMNS, estimation_summary
from xai_kedro.core.meta.adapters.estimators import ESTIMATORS
from xai_kedro.core.meta.adapters.ranking import correctness_matrix
from xai_kedro.core.meta.adapters.selection import (
    CLEAN_SELECTION,
    RANDOM_SELECTION,
    SELECTION_COLUMNS,
    adapter_selection,
    pick,
)
from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.prediction.baselines import (
    DIFFERENCE_COLUMNS,
    confidence_differences,
    learned_method,
)
from xai_kedro.core.meta.prediction.comparison import SCORE_COLUMNS, grouped_folds
from xai_kedro.core.meta.prediction.correlations import CORRELATION_COLUMNS, correlations
from xai_kedro.core.meta.prediction.features import (
    CONFIDENCE_SET,
    GROUP,
    OBJECT_SHARE_FEATURE,
    OOD_KEYS,
    TARGET,
    XAI_CONFIDENCE_SET,
    XAI_SET,
    build_meta_dataset,
    default_feature_sets,
)
from xai_kedro.core.meta.prediction.learners import make_model
from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings
from xai_kedro.core.meta.report.formatting import fmt, interval_sign
from xai_kedro.core.meta.stats.bootstrap import BootstrapOptions, TwoWay
from xai_kedro.core.meta.tables import FAMILY_TABLES
from xai_kedro.core.robustness.columns import REFERENCE_FAMILY, family_rows, shift_families

logger = logging.getLogger(__name__)

FAMILY_HYPOTHESIS, FAMILY_HEADLINE, FAMILY_ESTIMATION = FAMILY_TABLES

# The hypothesis' sign of each feature against correctness under shift: more attention on the
# object goes with more correct predictions; a higher deletion score or entropy with fewer.
EXPECTED_SIGNS: dict[str, int] = {
    OBJECT_SHARE_FEATURE: 1,
    "deletion_auc": -1,
    "attn_entropy": -1,
}
ALL_CLASSES = "all"
HOLDS, REVERSED, NO_EFFECT, UNDEFINED = "holds", "reversed", "no effect", "undefined"
HYPOTHESIS_COLUMNS = (
    "shift_family",
    "class",
    "feature",
    "expected_sign",
    "verdict",
    *(c for c in CORRELATION_COLUMNS if c not in ("feature", "feature_group")),
)
HEADLINE_COLUMNS = ("shift_family", "class", *DIFFERENCE_COLUMNS)
# The selection regret minus the expected regret of a random pick (points, < 0 = better than
# random), paired: the same resamples of adapters (and images) for both.
REGRET_VS_RANDOM = ("regret_minus_random_points", "regret_minus_random_ci_low",
                    "regret_minus_random_ci_high")  # fmt: skip
_NAMES = ("method", "label", "shift", "level", "n_adapters")
ESTIMATION_FAMILY_COLUMNS = (
    "shift_family",
    *SUMMARY_COLUMNS,
    *(c for c in SELECTION_COLUMNS if c not in _NAMES),
    *REGRET_VS_RANDOM,
)


@dataclass(frozen=True)
class FamilySettings(BootstrapOptions, Settings):
    """Settings of the per-family Gold tables (parameters `meta_learning.families`).

    model: the one meta-learner of the headline (a name under `meta_learners.models`); a cheap
        one, since it is fitted per family x feature set x fold.
    cv_folds: image-grouped folds of its out-of-fold scores.
    n_bootstrap / ci_alpha: replicates and level of every interval here (fewer than the
        reference tables': one family's table is one of several).
    per_class: also answer the hypothesis per true class.
    features: the hypothesis' features and their expected signs (+1 / -1).
    """

    PATH = "meta_learning.families"

    model: str = "LogisticRegression"
    cv_folds: int = 5
    n_bootstrap: int = 200
    ci_alpha: float = 0.05
    per_class: bool = True
    features: Mapping[str, int] = field(default_factory=lambda: dict(EXPECTED_SIGNS))

    def __post_init__(self) -> None:
        bad = {f: s for f, s in dict(self.features).items() if s not in (1, -1)}
        if bad:
            raise ValueError(f"features: expected signs must be +1 or -1, got {bad}")
        if int(self.cv_folds) < 2:
            raise ValueError(f"cv_folds must be >= 2, got {self.cv_folds}")


@dataclass(frozen=True, eq=False)
class FamilyInputs:
    """What the per-family tables read, gathered once and handed to each: the Silver rows, this
    block's settings and the seed; the headline's meta-learners (`meta_learners`); the adapter
    level's settings (`estimation`, whose replicates and level this block overrides) and the
    label-free estimators' source rows (``silver_source``, the validation split, whatever the
    family). ``silver_xai`` is kept sorted by image and adapter: the tables are a function of
    the Silver rows, not of their order (Spark returns them in any order)."""

    silver_xai: pd.DataFrame
    silver_ood: pd.DataFrame
    settings: FamilySettings = field(default_factory=FamilySettings)
    seed: int = 0
    meta_learners: MetaLearnerSettings = field(default_factory=MetaLearnerSettings)
    estimation: EstimationSettings = field(default_factory=EstimationSettings)
    silver_source: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        xai = self.silver_xai.sort_values([GROUP, "adapter_id"], ignore_index=True)
        object.__setattr__(self, "silver_xai", xai)

    def metas(self) -> list[tuple[str, pd.DataFrame]]:
        """(family, meta dataset) of each shift family, `reference` first."""
        return [
            (family, build_meta_dataset(self.silver_xai, family_rows(self.silver_ood, family)))
            for family in shift_families(self.silver_ood)
        ]


def verdict(low: Any, high: Any, expected: int) -> str:
    """'holds' when the interval excludes 0 on the expected side, 'reversed' on the other,
    'no effect' when it includes 0, 'undefined' when there is no interval."""
    lo, hi = float(low), float(high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return UNDEFINED
    side = interval_sign(lo, hi)
    if side == 0:
        return NO_EFFECT
    return HOLDS if side == expected else REVERSED


def _hypothesis_rows(
    meta: pd.DataFrame, settings: FamilySettings, seed: int
) -> pd.DataFrame | None:
    """The hypothesis' correlations on one meta dataset (features present and not all NaN)."""
    signs = dict(settings.features)
    feats = [f for f in signs if f in meta.columns and meta[f].notna().any()]
    if not feats or len(meta) == 0:
        return None
    corr = correlations(meta, {"hypothesis": feats}, settings.resampling(seed))
    corr["expected_sign"] = corr["feature"].map(signs).astype(int)
    corr["verdict"] = [
        verdict(lo, hi, s)
        for lo, hi, s in zip(
            corr["pearson_ci_low"], corr["pearson_ci_high"], corr["expected_sign"], strict=True
        )
    ]
    return corr


def family_hypothesis(inputs: FamilyInputs) -> pd.DataFrame:
    """One row per shift family x class ("all" first, then each true class) x hypothesis
    feature: the clean-image feature against correctness under that family (Pearson r with an
    image-clustered interval, per-image p-values), its expected sign and the verdict."""
    parts = []
    for family, meta in inputs.metas():
        for scope, rows in _class_scopes(meta, inputs.settings.per_class):
            part = meta if rows is None else meta.iloc[rows].reset_index(drop=True)
            corr = _hypothesis_rows(part, inputs.settings, inputs.seed)
            if corr is not None:
                parts.append(corr.assign(shift_family=family, **{"class": scope}))
    return _stacked(parts, HYPOTHESIS_COLUMNS)


def _stacked(parts: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """The families' rows in one table with the declared columns (empty when none has rows)."""
    if not parts:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(parts, ignore_index=True).reindex(columns=list(columns))


def grouped_oof_scores(
    meta: pd.DataFrame,
    sets: Mapping[str, list[str]],
    model: str,
    hyperparams: Mapping[str, Any],
    cv_folds: int,
    seed: int,
) -> pd.DataFrame:
    """Image-grouped out-of-fold scores of one model on each feature set, in the long form of
    `classifier_scores` (split "grouped_oof"); empty when the folds are impossible."""
    y = meta[TARGET].to_numpy(dtype=bool).astype(int)
    groups = meta[GROUP].to_numpy()
    try:
        folds = grouped_folds(groups, cv_folds, y, seed)
    except ValueError as exc:
        logger.warning("family headline: grouped CV impossible (%s); no learned scores", exc)
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    parts = []
    for set_name, feats in sets.items():
        X = meta[feats].to_numpy(dtype=float)
        oof = np.full(y.size, np.nan)
        for tr, te in folds:
            if np.unique(y[tr]).size < 2:
                continue  # a fold with one class in training has no model; its rows stay NaN
            oof[te] = (
                make_model(model, hyperparams, seed).fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
            )
        idx = np.arange(y.size)
        frame = {"feature_set": set_name, "model": model, "split": "grouped_oof", "row": idx}
        frame.update(image_id=groups, y_true=y.astype(bool), y_score=oof)
        parts.append(pd.DataFrame(frame))
    return pd.concat(parts, ignore_index=True).reindex(columns=list(SCORE_COLUMNS))


def _class_scopes(meta: pd.DataFrame, per_class: bool) -> list[tuple[str, np.ndarray | None]]:
    """("all", None) then (class, row positions) for each true class when asked."""
    scopes: list[tuple[str, np.ndarray | None]] = [(ALL_CLASSES, None)]
    if per_class and "label" in meta.columns:
        labels = meta["label"].to_numpy()
        for label in sorted(meta["label"].dropna().unique()):
            scopes.append((str(label), np.flatnonzero(labels == label)))
    return scopes


def _scoped(
    meta: pd.DataFrame, scores: pd.DataFrame, rows: np.ndarray | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The meta rows at ``rows`` and their out-of-fold scores, renumbered to the subset."""
    if rows is None:
        return meta, scores
    position = pd.Series(np.arange(rows.size), index=rows)
    part = scores[scores["row"].isin(rows)]
    part = part.assign(row=position.loc[part["row"].to_numpy()].to_numpy())
    return meta.iloc[rows].reset_index(drop=True), part


def family_headline(inputs: FamilyInputs) -> pd.DataFrame:
    """Per shift family and class ("all" first, then each true class), the image-grouped
    headline: XAI (+ confidence) vs the confidence meta-learner and each raw confidence score,
    AUROC / AURC / AUGRC differences with paired image-clustered intervals
    (`confidence_differences` on that family's rows).

    The meta-learner is fitted once per family on every class (image-grouped out-of-fold); a
    class's rows are then ranked by those scores alone, so the per-class rows ask whether XAI
    separates right from wrong *within* a class, where differences between classes' XAI
    profiles cannot help."""
    p, learners, seed = inputs.settings, inputs.meta_learners, inputs.seed
    if p.model not in learners.models:
        raise ValueError(
            f"meta_learning.families.model: unknown model {p.model!r}; "
            f"known: {', '.join(learners.models)}"
        )
    parts = []
    for family, meta in inputs.metas():
        if len(meta) == 0:
            continue
        all_sets = default_feature_sets(meta)
        sets = {k: all_sets[k] for k in (CONFIDENCE_SET, XAI_SET, XAI_CONFIDENCE_SET)}
        scores = grouped_oof_scores(
            meta, sets, p.model, learners.models[p.model], int(p.cv_folds), seed
        )
        for scope, rows in _class_scopes(meta, p.per_class):
            # within a class only the meta-learners are compared (the headline's question)
            bases = None if rows is None else (learned_method(CONFIDENCE_SET),)
            diffs = confidence_differences(
                *_scoped(meta, scores, rows), p.resampling(seed), bases=bases
            )
            if len(diffs):
                parts.append(diffs.assign(shift_family=family, **{"class": scope}))
    return _stacked(parts, HEADLINE_COLUMNS)


# ------------------------------------------------------------------ adapter level per family
def _minus_random(pred: np.ndarray, measured: np.ndarray) -> float:
    """Regret of picking by ``pred`` minus a random pick's expected regret (points): the zoo's
    mean accuracy minus the pick's."""
    y = np.asarray(measured, dtype=float)
    return float((y.mean() - y[pick(pred)]) * 100.0)


def _shift_values(ood: pd.DataFrame, shift: str, level: str, adapters: list[str]) -> Any:
    """[adapters, images] correctness over one shift's conditions (as `adapter_selection`'s
    two-way intervals use), or None when some adapter lacks an image's conditions."""
    rows = ood if level == "overall" else ood[ood["corruption"] == shift]
    m = correctness_matrix(rows, adapters)
    return m if m.shape[1] and not np.isnan(m).any() else None


def regret_vs_random(
    estimation: pd.DataFrame,
    ood: pd.DataFrame,
    settings: EstimationSettings,
    seed: int = 0,
    levels: tuple[str, ...] = ("corruption", "overall"),
) -> pd.DataFrame:
    """Per (method, shift): the pick's regret minus a random pick's expected regret (points,
    < 0 = better than random), with an interval on the resamples of `adapter_selection`'s
    (two-way over families and images where the correctness matrix is complete)."""
    est = estimation[estimation["level"].isin(levels) & (estimation["method"] != BASELINE_CONSTANT)]
    clean = est.drop_duplicates(["shift", "adapter_id"]).assign(
        method=CLEAN_SELECTION, predicted_accuracy=lambda d: d["clean_accuracy"]
    )
    boot = settings.resampling(seed)
    rows = []
    for (method, shift), g in pd.concat([est, clean]).groupby(["method", "shift"], sort=False):
        g = g.sort_values("adapter_id")
        pred = g["predicted_accuracy"].to_numpy(dtype=float)
        y = g["measured_accuracy"].to_numpy(dtype=float)
        row = {"method": method, "shift": shift} | dict.fromkeys(REGRET_VS_RANDOM, np.nan)
        rows.append(row)
        if len(g) == 0 or np.isnan(pred).any() or np.isnan(y).any():
            continue
        row[REGRET_VS_RANDOM[0]] = _minus_random(pred, y)
        if len(g) < 2:
            continue
        families = g["family"].to_numpy()
        values = _shift_values(ood, shift, g["level"].iloc[0], list(g["adapter_id"]))
        if values is None:
            low, high = boot.interval(_minus_random, pred, y, groups=families)
        else:
            low, high = TwoWay(values, families).interval(
                lambda means, idx, p=pred: _minus_random(p[idx], means), boot
            )
        row[REGRET_VS_RANDOM[1]], row[REGRET_VS_RANDOM[2]] = low, high
    return pd.DataFrame(rows, columns=["method", "shift", *REGRET_VS_RANDOM])


def _one_family_estimation(
    silver_xai: pd.DataFrame,
    ood: pd.DataFrame,
    source: pd.DataFrame | None,
    settings: EstimationSettings,
    seed: int,
    estimate: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The estimation summary and the selection of one family's rows, side by side
    (``estimate``: that family's `accuracy_estimation` when already built)."""
    if estimate is None:
        estimate = accuracy_estimation(silver_xai, ood, source, None, settings, seed)
    summary = estimation_summary(estimate, settings, seed)
    selection = adapter_selection(estimate, settings, seed, silver_ood=ood)
    out = summary.merge(
        selection, on=["method", "shift"], how="outer", suffixes=("", "_sel"), sort=False
    )
    for c in ("label", "level", "n_adapters"):  # the selection's where the summary has no row
        out[c] = out[c].where(out[c].notna(), out.pop(f"{c}_sel"))
    out["n_adapters"] = out["n_adapters"].astype(int)
    out = out.merge(regret_vs_random(estimate, ood, settings, seed), on=["method", "shift"],
                    how="left")  # fmt: skip
    rank = {m: i for i, m in enumerate((*METHODS, CLEAN_SELECTION, RANDOM_SELECTION))}
    return overall_first(out, rank, unknown=len(METHODS))


def family_estimation(
    inputs: FamilyInputs, reference_estimate: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per shift family x method x shift (each corruption of the family and `all`): the
    adapter-level estimation MAE (`accuracy_estimation_summary`'s columns) and the selection
    regret (`adapter_selection`'s, plus the paired regret minus a random pick's), on that
    family's rows (the label-free estimators' source: ``inputs.silver_source``); replicates and
    level are this block's (`FamilySettings`). ``reference_estimate``: the Gold
    `accuracy_estimation` (the reference family's, same regressor and seed), reused rather than
    fitted again."""
    p = inputs.settings
    est = replace(inputs.estimation, n_bootstrap=p.n_bootstrap, ci_alpha=p.ci_alpha)
    source = None if inputs.silver_source is None else family_rows(inputs.silver_source)
    parts = []
    for family in shift_families(inputs.silver_ood):
        ood = family_rows(inputs.silver_ood, family)
        ood = ood.sort_values(list(OOD_KEYS), ignore_index=True)
        if len(ood):
            reuse = reference_estimate if family == REFERENCE_FAMILY else None
            table = _one_family_estimation(inputs.silver_xai, ood, source, est, inputs.seed, reuse)
            parts.append(table.assign(shift_family=family))
    return _stacked(parts, ESTIMATION_FAMILY_COLUMNS)


def family_tables(
    inputs: FamilyInputs, reference_estimate: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Every per-family Gold table, by name (`FAMILY_TABLES`); ``reference_estimate``: the Gold
    `accuracy_estimation`, reused for the reference family (see `family_estimation`)."""
    return {
        FAMILY_HYPOTHESIS: family_hypothesis(inputs),
        FAMILY_HEADLINE: family_headline(inputs),
        FAMILY_ESTIMATION: family_estimation(inputs, reference_estimate),
    }


# ------------------------------------------------------------------ report section
def _hypothesis_sentence(rows: pd.DataFrame) -> str:
    """The verdict of each feature over all classes, with r and its interval."""
    parts = []
    for _, r in rows.iterrows():
        parts.append(
            f"{r['feature']} r = {fmt(r['pearson_r'], '+.3f')} "
            f"[{fmt(r['pearson_ci_low'], '+.3f')}, {fmt(r['pearson_ci_high'], '+.3f')}] "
            f"(expected {'+' if int(r['expected_sign']) > 0 else '-'}): **{r['verdict']}**"
        )
    return "; ".join(parts) + "."


def _class_sentence(rows: pd.DataFrame) -> str | None:
    """The (class, feature) pairs whose interval excludes 0, or that none does."""
    if rows.empty:
        return None
    definite = rows[rows["verdict"].isin([HOLDS, REVERSED])]
    if definite.empty:
        return "Per class, every interval includes 0 (no effect in any class)."
    listed = ", ".join(
        f"class {r['class']} {r['feature']} {r['verdict']}" for _, r in definite.iterrows()
    )
    return f"Per class: {listed}; the other class-feature pairs show no effect."


_HEADLINE_PAIR = f"meta:{XAI_CONFIDENCE_SET} - meta:{CONFIDENCE_SET}"


def _headline_words(r: pd.Series) -> tuple[str, str]:
    """How XAI + confidence compares with the confidence meta-learner, by AUROC (higher is
    better) and by AURC (lower is better), each from its own interval."""
    auroc = interval_sign(r["auroc_diff_ci_low"], r["auroc_diff_ci_high"])
    aurc = -interval_sign(r["aurc_diff_ci_low"], r["aurc_diff_ci_high"])
    words = {1: "adds to", -1: "does worse than", 0: "shows no effect over"}
    return words[auroc], words[aurc]


def _headline_rows(headline: pd.DataFrame | None, family: str) -> pd.DataFrame:
    if headline is None or headline.empty:
        return pd.DataFrame()
    h = headline[headline["shift_family"] == family]
    return h[h["comparison"].str.startswith(_HEADLINE_PAIR)]


def _headline_sentence(headline: pd.DataFrame | None, family: str) -> str:
    """XAI + confidence vs the confidence meta-learner over all classes: the AUROC and AURC
    differences, each with its own verdict (they can disagree)."""
    h = _headline_rows(headline, family)
    if "class" in h.columns:
        h = h[h["class"] == ALL_CLASSES]
    if h.empty:
        return "No headline comparison (too few images or a single outcome class)."
    r = h.iloc[0]
    by_auroc, by_aurc = _headline_words(r)
    return (
        f"By AUROC, XAI + confidence {by_auroc} the confidence meta-learner ({r['model']}): "
        f"difference {fmt(r['auroc_diff'], '+.3f')} [{fmt(r['auroc_diff_ci_low'], '+.3f')}, "
        f"{fmt(r['auroc_diff_ci_high'], '+.3f')}]; by AURC (lower is better) it {by_aurc} it: "
        f"difference {fmt(r['aurc_diff'], '+.4f')} [{fmt(r['aurc_diff_ci_low'], '+.4f')}, "
        f"{fmt(r['aurc_diff_ci_high'], '+.4f')}]."
    )


def _class_headline_sentence(headline: pd.DataFrame | None, family: str) -> str | None:
    """The classes where XAI + confidence separates from the confidence meta-learner within the
    class (by AUROC or AURC), or that none does."""
    h = _headline_rows(headline, family)
    if "class" not in h.columns:
        return None
    h = h[h["class"] != ALL_CLASSES]
    if h.empty:
        return None
    definite = []
    for _, r in h.iterrows():
        by_auroc, by_aurc = _headline_words(r)
        for metric, word, diff in (
            ("AUROC", by_auroc, "auroc_diff"),
            ("AURC", by_aurc, "aurc_diff"),
        ):
            if word != "shows no effect over":
                definite.append(f"class {r['class']} {metric} {fmt(r[diff], '+.3f')} ({word})")
    if not definite:
        return (
            "Within each class, XAI + confidence is not separated from the confidence "
            "meta-learner (every AUROC and AURC interval includes 0)."
        )
    return (
        "Within classes, XAI + confidence vs the confidence meta-learner: "
        + ", ".join(definite)
        + "; the other classes show no effect."
    )


def _ci(r: pd.Series, name: str, value: str, spec: str = ".1f") -> str:
    """ "v [low, high]" of one interval column family of a row."""
    return (
        f"{fmt(r[value], spec)} [{fmt(r[f'{name}_ci_low'], spec)}, "
        f"{fmt(r[f'{name}_ci_high'], spec)}]"
    )


def _versus_meta(r: pd.Series) -> str:
    """How a method's MAE compares with the meta-regressor's (paired interval of the gap)."""
    side = interval_sign(r["mae_minus_meta_ci_low"], r["mae_minus_meta_ci_high"])
    word = {1: "the meta-regressor is closer", -1: "it is closer", 0: "not separated"}[side]
    return f"{word}: MAE difference {_ci(r, 'mae_minus_meta', 'mae_minus_meta_points', '+.1f')}"


def _estimation_sentence(estimation: pd.DataFrame | None, family: str) -> str | None:
    """Overall estimation MAE (points) of the meta-regressor vs the best label-free estimator
    vs the trivial baselines, and the meta-regressor's selection regret vs a random pick."""
    if estimation is None or estimation.empty:
        return None
    rows = estimation[(estimation["shift_family"] == family) & (estimation["level"] == "overall")]
    rows = rows.set_index("method")
    if META_REGRESSOR not in rows.index or pd.isna(rows.loc[META_REGRESSOR, "mae_points"]):
        return "No adapter-level estimation (too few adapters or config families)."
    meta = rows.loc[META_REGRESSOR]
    parts = [f"Estimation MAE (points): meta-regressor {_ci(meta, 'mae', 'mae_points')}"]
    free = rows[rows.index.isin(list(ESTIMATORS.names())) & rows["mae_points"].notna()]
    if len(free):
        best = free["mae_points"].idxmin()
        parts.append(f"best label-free {best} {_ci(rows.loc[best], 'mae', 'mae_points')} "
                     f"({_versus_meta(rows.loc[best])})")  # fmt: skip
    for name in (b for b in BASELINES if b in rows.index and pd.notna(rows.loc[b, "mae_points"])):
        r = rows.loc[name]
        parts.append(f"{name} {_ci(r, 'mae', 'mae_points')} ({_versus_meta(r)})")
    text = "; ".join(parts) + "."
    if pd.notna(meta.get("regret_points")):
        side = interval_sign(
            meta["regret_minus_random_ci_low"], meta["regret_minus_random_ci_high"]
        )
        word = {-1: "better than", 1: "worse than", 0: "not separated from"}[side]
        random = rows.loc[RANDOM_SELECTION] if RANDOM_SELECTION in rows.index else None
        text += (
            f" Selection regret of the meta-regressor's pick {_ci(meta, 'regret', 'regret_points')}"
            + ("" if random is None else
               f" vs a random pick's {_ci(random, 'regret', 'regret_points')}")
            + f": {word} a random pick (difference "
            f"{_ci(meta, 'regret_minus_random', 'regret_minus_random_points', '+.1f')})."
        )  # fmt: skip
    return text


def families_section(
    hypothesis: pd.DataFrame,
    headline: pd.DataFrame | None,
    estimation: pd.DataFrame | None = None,
) -> list[str]:
    """The "Per shift family" section: one paragraph per family, every word from the numbers
    ("no effect" where the interval includes 0)."""
    lines = [
        "## Per shift family",
        "The hypothesis: a model that focuses on the object (high object share, low deletion "
        "score, low attention entropy on the clean image) stays correct more often under the "
        "shift. Pearson r with correctness under each family, image-clustered 95% intervals.",
    ]
    if estimation is not None and not estimation.empty:
        lines[1] += (
            " Adapter level: OOD accuracy estimation error and selection regret in accuracy "
            "points, 95% intervals over config families (and images); a random pick is the "
            "selection floor."
        )
    for family in hypothesis["shift_family"].drop_duplicates():
        fam = hypothesis[hypothesis["shift_family"] == family]
        overall = fam[fam["class"] == ALL_CLASSES]
        text = [f"**{family}** (n = {fmt(overall['n'].max(), '.0f')} predictions):"]
        if not overall.empty:
            text.append(_hypothesis_sentence(overall))
        per_class = _class_sentence(fam[fam["class"] != ALL_CLASSES])
        if per_class:
            text.append(per_class)
        text.append(_headline_sentence(headline, family))
        per_class_headline = _class_headline_sentence(headline, family)
        if per_class_headline:
            text.append(per_class_headline)
        adapter_level = _estimation_sentence(estimation, family)
        if adapter_level:
            text.append(adapter_level)
        lines += ["", " ".join(text)]
    return lines
