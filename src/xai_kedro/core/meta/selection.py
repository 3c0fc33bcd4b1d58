"""Adapter selection without labelled shifted data: which adapter each estimator would pick.

For every method and shift the pick is the adapter with the highest predicted OOD accuracy.
Its regret is the oracle's true accuracy minus the pick's (points, >= 0); its gain over the
practitioner's default, picking by clean validation accuracy, is the pick's true accuracy minus
the clean pick's (points; > 0 = the method selects better). Intervals come from a bootstrap over
adapters that resamples whole config families: the zoo is redrawn and every pick redone.
Ties go to the first adapter in sorted id order, so picks are reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.estimation import METHOD_LABELS, METHODS, resolve_estimation_params
from xai_kedro.core.meta.features import require_columns
from xai_kedro.core.meta.stats import bootstrap_ci

logger = logging.getLogger(__name__)

CLEAN_SELECTION = "clean_accuracy"  # the baseline: pick by clean validation accuracy
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


def adapter_selection(
    estimation: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    levels: Sequence[str] = ("corruption", "overall"),
) -> pd.DataFrame:
    """One row per (method, shift): the pick, its true OOD accuracy, the oracle and the clean
    pick, regret and gain vs clean selection with bootstrap intervals (see module doc).

    ``estimation`` is ``accuracy_estimation``'s long table (needs clean_accuracy, the source
    validation accuracy of each adapter). The clean-accuracy selection itself is a row too.
    """
    p = resolve_estimation_params(params)
    cols = ["adapter_id", "family", "method", "shift", "level", "predicted_accuracy"]
    require_columns(estimation, [*cols, "measured_accuracy", "clean_accuracy"], "estimation")
    est = estimation[estimation["level"].isin(levels)]
    if est["clean_accuracy"].isna().any():
        raise ValueError("accuracy_estimation has adapters without clean_accuracy")
    truth = est.drop_duplicates(["shift", "adapter_id"]).set_index(["shift", "adapter_id"])
    baseline = truth.reset_index().assign(
        method=CLEAN_SELECTION, predicted_accuracy=lambda d: d["clean_accuracy"]
    )
    rows = []
    both = pd.concat([est, baseline], ignore_index=True)
    for (method, shift), group in both.groupby(["method", "shift"], sort=False):
        g = group.sort_values("adapter_id")
        row: dict[str, Any] = {
            "method": method,
            "label": METHOD_LABELS.get(method, "Clean validation accuracy"),
            "shift": shift,
            "level": g["level"].iloc[0],
            "n_adapters": len(g),
        }
        pred = g["predicted_accuracy"].to_numpy(dtype=float)
        if np.isnan(pred).any():
            logger.info("selection by %s on %s: some predictions are NaN; no pick", method, shift)
            rows.append(row)
            continue
        y = g["measured_accuracy"].to_numpy(dtype=float)
        clean = g["clean_accuracy"].to_numpy(dtype=float)
        ids = g["adapter_id"].to_numpy()
        chosen, oracle, clean_pick = pick(pred), pick(y), pick(clean)
        regret, gain = selection_outcome(pred, y, clean)
        row.update(
            picked_adapter=ids[chosen],
            picked_predicted_accuracy=pred[chosen],
            picked_true_accuracy=y[chosen],
            oracle_adapter=ids[oracle],
            oracle_accuracy=y[oracle],
            clean_pick_adapter=ids[clean_pick],
            clean_pick_accuracy=y[clean_pick],
            regret_points=regret,
            gain_vs_clean_points=gain,
        )
        if len(g) >= 2:
            low, high = bootstrap_ci(
                selection_outcome,
                pred,
                y,
                clean,
                n_boot=int(p["n_bootstrap"]),
                alpha=float(p["ci_alpha"]),
                seed=seed,
                groups=g["family"].to_numpy(),
            )
            row.update(
                regret_ci_low=low[0],
                regret_ci_high=high[0],
                gain_vs_clean_ci_low=low[1],
                gain_vs_clean_ci_high=high[1],
            )
        rows.append(row)
    out = pd.DataFrame(rows).reindex(columns=list(SELECTION_COLUMNS))
    rank = {m: i for i, m in enumerate(METHODS)} | {CLEAN_SELECTION: len(METHODS) + 1}
    out = out.assign(
        _o=out["method"].map(rank).fillna(len(METHODS)),  # methods not in METHODS: before clean
        _l=(out["level"] != "overall").astype(int),
    )
    return (
        out.sort_values(["_l", "shift", "_o"], kind="stable")
        .drop(columns=["_o", "_l"])
        .reset_index(drop=True)
    )
