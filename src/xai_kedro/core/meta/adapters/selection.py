"""Adapter selection without labelled shifted data: which adapter each estimator would pick.

For every method and shift the pick is the adapter with the highest predicted OOD accuracy.
Its regret is the oracle's true accuracy minus the pick's (points, >= 0); its gain over the
practitioner's default, picking by clean validation accuracy, is the pick's true accuracy minus
the clean pick's (points; > 0 = the method selects better). Intervals come from a bootstrap
that redraws the zoo (whole config families) and every pick; given ``silver_ood`` it is two-way:
the test images are redrawn too (each image with all its conditions, the same draw for every
adapter) and the true accuracies recomputed, because another test set moves the regret as much
as another zoo does. The predictions stay as fitted.
Ties go to the first adapter in sorted id order, so picks are reproducible.

Beside the methods: the expected outcome of a uniformly random pick (regret = oracle minus the
zoo's mean accuracy), the floor any rule must clear. The constant baseline of the estimation
table is no selection rule (its leave-one-family-out mean ranks the worst family first) and
gets no row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters.estimation import (
    BASELINE_CONSTANT,
    METHOD_LABELS,
    METHODS,
    SUMMARY_LEVELS,
    overall_first,
)
from xai_kedro.core.meta.adapters.ranking import correctness_matrix
from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.prediction.features import require_columns
from xai_kedro.core.meta.stats.bootstrap import TwoWay, interval_columns

logger = logging.getLogger(__name__)

CLEAN_SELECTION = "clean_accuracy"  # the baseline: pick by clean validation accuracy
RANDOM_SELECTION = "random_pick"  # the floor: the expected outcome of a uniformly random pick
SELECTION_COLUMNS = (
    "method",
    "label",
    "shift",
    "level",
    "n_adapters",
    "picked_adapter",
    "picked_predicted_accuracy",
    "picked_true_accuracy",
    "oracle_adapter",
    "oracle_accuracy",
    "clean_pick_adapter",
    "clean_pick_accuracy",
    "regret_points",
    "regret_ci_low",
    "regret_ci_high",
    "gain_vs_clean_points",
    "gain_vs_clean_ci_low",
    "gain_vs_clean_ci_high",
)


def pick(scores: np.ndarray) -> int:
    """Index of the highest score (first on ties); NaN scores never win."""
    s = np.asarray(scores, dtype=float)
    if s.size == 0 or np.isnan(s).all():
        raise ValueError("no finite score to select an adapter by")
    return int(np.nanargmax(s))


def selection_outcome(predicted: Any, measured: Any, clean: Any) -> list[float]:
    """[regret vs oracle, gain vs clean-accuracy pick] in accuracy points."""
    y = np.asarray(measured, dtype=float)
    chosen = y[pick(predicted)]
    return [(y.max() - chosen) * 100.0, (chosen - y[pick(clean)]) * 100.0]


def random_pick_outcome(measured: Any, clean: Any) -> list[float]:
    """[expected regret, expected gain vs the clean pick] of a uniformly random pick (points)."""
    y = np.asarray(measured, dtype=float)
    return [(y.max() - y.mean()) * 100.0, (y.mean() - y[pick(clean)]) * 100.0]


def _with_clean_selection(estimation: pd.DataFrame) -> pd.DataFrame:
    """The estimation rows of the summary levels plus the clean-accuracy selection as one more
    method."""
    cols = ["adapter_id", "family", "method", "shift", "level", "predicted_accuracy"]
    require_columns(estimation, [*cols, "measured_accuracy", "clean_accuracy"], "estimation")
    summary_rows = estimation["level"].isin(SUMMARY_LEVELS)
    est = estimation[summary_rows & (estimation["method"] != BASELINE_CONSTANT)]
    if est["clean_accuracy"].isna().any():
        raise ValueError("accuracy_estimation has adapters without clean_accuracy")
    truth = est.drop_duplicates(["shift", "adapter_id"]).set_index(["shift", "adapter_id"])
    baseline = truth.reset_index().assign(
        method=CLEAN_SELECTION, predicted_accuracy=lambda d: d["clean_accuracy"]
    )
    return pd.concat([est, baseline], ignore_index=True)


def _intervals(
    outcome: Any,
    per_unit: Sequence[np.ndarray],
    g: pd.DataFrame,
    values: np.ndarray | None,
    settings: EstimationSettings,
    seed: int,
) -> dict[str, Any]:
    """Regret and gain intervals of ``outcome(*per_unit, measured)``: over families, or two-way
    (families and images) when ``values`` holds the [adapters, images] correctness."""
    if len(g) < 2:
        return {}
    families = g["family"].to_numpy()
    boot = settings.resampling(seed)
    y = g["measured_accuracy"].to_numpy(dtype=float)
    if values is None:
        low, high = boot.interval(outcome, *per_unit, y, groups=families)
    else:

        def stat(means: np.ndarray, rows: np.ndarray) -> list[float]:
            return outcome(*(a[rows] for a in per_unit), means)

        low, high = TwoWay(values, families).interval(stat, boot)
    return interval_columns(("regret", "gain_vs_clean"), low, high)


def _row_head(method: str, label: str, shift: str, g: pd.DataFrame) -> dict[str, Any]:
    """The columns that name a selection row: which method, on which shift, over how many."""
    return {
        "method": method,
        "label": label,
        "shift": shift,
        "level": g["level"].iloc[0],
        "n_adapters": len(g),
    }


def _selection_row(
    method: str,
    shift: str,
    g: pd.DataFrame,
    settings: EstimationSettings,
    seed: int,
    values: np.ndarray | None = None,
) -> dict[str, Any]:
    """One method's pick on one shift (``g`` sorted by adapter), with bootstrap intervals; for
    `RANDOM_SELECTION` the expected outcome of a uniformly random pick (no adapter is picked;
    ``picked_true_accuracy`` is the zoo's mean), with the same bootstrap."""
    y = g["measured_accuracy"].to_numpy(dtype=float)
    clean = g["clean_accuracy"].to_numpy(dtype=float)
    ids = g["adapter_id"].to_numpy()
    if method == RANDOM_SELECTION:
        row = _row_head(method, "Random pick (expected)", shift, g)
        row["picked_true_accuracy"] = y.mean()
        outcome, per_unit = _random_outcome, [clean]
        regret, gain = random_pick_outcome(y, clean)
    else:
        row = _row_head(method, METHOD_LABELS.get(method, "Clean validation accuracy"), shift, g)
        pred = g["predicted_accuracy"].to_numpy(dtype=float)
        if np.isnan(pred).any():
            logger.info("selection by %s on %s: some predictions are NaN; no pick", method, shift)
            return row
        chosen = pick(pred)
        row.update(
            picked_adapter=ids[chosen],
            picked_predicted_accuracy=pred[chosen],
            picked_true_accuracy=y[chosen],
        )
        outcome, per_unit = _pick_outcome, [pred, clean]
        regret, gain = selection_outcome(pred, y, clean)
    oracle, clean_pick = pick(y), pick(clean)
    row.update(
        oracle_adapter=ids[oracle],
        oracle_accuracy=y[oracle],
        clean_pick_adapter=ids[clean_pick],
        clean_pick_accuracy=y[clean_pick],
        regret_points=regret,
        gain_vs_clean_points=gain,
    )
    row.update(_intervals(outcome, per_unit, g, values, settings, seed))
    return row


def _pick_outcome(pred: np.ndarray, clean: np.ndarray, measured: np.ndarray) -> list[float]:
    return selection_outcome(pred, measured, clean)


def _random_outcome(clean: np.ndarray, measured: np.ndarray) -> list[float]:
    return random_pick_outcome(measured, clean)


def _shift_matrices(silver_ood: pd.DataFrame | None, clean: pd.DataFrame) -> dict[str, np.ndarray]:
    """shift -> [adapters (sorted), images] correctness over the shift's conditions (`all`: every
    condition, a corruption: its severities); none without ``silver_ood``."""
    if silver_ood is None:
        return {}
    out = {}
    for (shift, level), g in clean.groupby(["shift", "level"], sort=False):
        rows = silver_ood if level == "overall" else silver_ood[silver_ood["corruption"] == shift]
        m = correctness_matrix(rows, sorted(g["adapter_id"]))
        if m.shape[1] and not np.isnan(m).any():
            out[shift] = m
    return out


def adapter_selection(
    estimation: pd.DataFrame,
    settings: EstimationSettings | None = None,
    seed: int = 0,
    silver_ood: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (method, shift): the pick, its true OOD accuracy, the oracle and the clean
    pick, regret and gain vs clean selection with bootstrap intervals (see module doc).

    ``estimation`` is ``accuracy_estimation``'s long table (needs clean_accuracy, the source
    validation accuracy of each adapter). The clean-accuracy selection and the expected
    random pick are rows too. With ``silver_ood`` the intervals are two-way (module doc).
    """
    p = settings or EstimationSettings()
    both = _with_clean_selection(estimation)
    clean = both[both["method"] == CLEAN_SELECTION]
    values = _shift_matrices(silver_ood, clean)
    rows = [
        _selection_row(method, shift, g.sort_values("adapter_id"), p, seed, values.get(shift))
        for (method, shift), g in both.groupby(["method", "shift"], sort=False)
    ]
    rows += [
        _selection_row(
            RANDOM_SELECTION, shift, g.sort_values("adapter_id"), p, seed, values.get(shift)
        )
        for shift, g in clean.groupby("shift", sort=False)
    ]
    out = pd.DataFrame(rows).reindex(columns=list(SELECTION_COLUMNS))
    rank = {m: i for i, m in enumerate(METHODS)} | {
        CLEAN_SELECTION: len(METHODS) + 1,
        RANDOM_SELECTION: len(METHODS) + 2,
    }
    return overall_first(out, rank, unknown=len(METHODS))  # unknown methods: before clean
