"""Gold-layer figures. Each function returns a ``matplotlib.figure.Figure`` built without pyplot
(no global state, no GUI backend: safe in Kedro runners and worker threads); Kedro saves it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from xai_kedro.core.meta.features import XAI_SET

METHOD_LABELS = {
    "meta_regressor": "Meta-regressor (LOAO RF)",
    "atc": "ATC-MC",
    "atc_ne": "ATC-NE",
    "doc": "DoC",
}


def _empty(fig: Figure, ax: Axes, message: str) -> Figure:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def correlation_bars(corr: pd.DataFrame, stat: str = "pearson_r") -> Figure:
    """Horizontal bars of each feature's correlation with OOD correctness, with bootstrap CIs."""
    fig = Figure(figsize=(7, 0.5 * max(len(corr), 4) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Clean-image features vs. correctness under corruption")
    if corr.empty or corr[stat].isna().all():
        return _empty(fig, ax, "no defined correlations")
    values = corr[stat].to_numpy(dtype=float)
    y = np.arange(len(corr))
    err = None
    lo_col, hi_col = f"{stat.removesuffix('_r')}_ci_low", f"{stat.removesuffix('_r')}_ci_high"
    if lo_col in corr.columns and hi_col in corr.columns:
        lo = corr[lo_col].to_numpy(dtype=float)
        hi = corr[hi_col].to_numpy(dtype=float)
        err = np.nan_to_num(np.vstack([values - lo, hi - values]), nan=0.0)
    groups = corr.get("feature_group", pd.Series(["xai"] * len(corr)))
    colors = ["tab:blue" if g == "xai" else "tab:gray" for g in groups]
    ax.barh(y, np.nan_to_num(values), xerr=err, color=colors, capsize=3)
    ax.set_yticks(y, corr["feature"].astype(str))
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel(f"{stat} with is_correct (95% cluster-bootstrap CI)")
    ax.set_ylabel("feature (blue: XAI, grey: confidence)")
    return fig


def roc_curves(scores: pd.DataFrame, feature_set: str = XAI_SET, split: str = "test") -> Figure:
    """ROC curve of every meta-learner on one feature set (``split``: test or grouped_oof)."""
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(f"Meta-learner ROC ({feature_set}, {split})")
    sel = scores[(scores["feature_set"] == feature_set) & (scores["split"] == split)]
    sel = sel[np.isfinite(sel["y_score"].to_numpy(dtype=float))]
    drawn = 0
    for model, g in sel.groupby("model", sort=False):
        y = g["y_true"].to_numpy(dtype=bool)
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, g["y_score"].to_numpy(dtype=float))
        auc = float(np.trapezoid(tpr, fpr))
        ax.plot(fpr, tpr, label=f"{model} (AUC {auc:.3f})")
        drawn += 1
    if not drawn:
        return _empty(fig, ax, "no scores with both classes")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    return fig


def feature_importance_plot(importance: pd.DataFrame) -> Figure:
    """Grouped bars: XGBoost gain, RandomForest and permutation importance per feature."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Meta-learner feature importance")
    cols = [
        ("xgb_importance", "XGBoost gain"),
        ("rf_importance", "RandomForest"),
        ("perm_importance", "permutation"),
    ]
    if importance.empty or importance[[c for c, _ in cols]].isna().all().all():
        return _empty(fig, ax, "no importances")
    x = np.arange(len(importance))
    width = 0.8 / len(cols)
    for i, (col, label) in enumerate(cols):
        err = importance["perm_std"].fillna(0) if col == "perm_importance" else None
        ax.bar(x + (i - 1) * width, importance[col].fillna(0), width, yerr=err, label=label)
    ax.set_xticks(x, importance["feature"].astype(str), rotation=20, ha="right")
    ax.set_xlabel("feature")
    ax.set_ylabel("importance")
    ax.legend()
    return fig


def degradation_heatmap(degradation: pd.DataFrame, value: str = "accuracy") -> Figure:
    """Adapter x (corruption, severity) heatmap of accuracy (or drop_pct), annotated."""
    height = 1 + 0.6 * max(degradation["adapter_id"].nunique(), 2)
    fig = Figure(figsize=(10, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(f"OOD {value} by corruption and severity")
    if degradation.empty:
        return _empty(fig, ax, "no OOD rows")
    d = degradation.assign(condition=degradation["corruption"] + "/" + degradation["severity"])
    table = d.pivot_table(index="adapter_id", columns="condition", values=value, sort=False)
    im = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    ax.set_xticks(np.arange(table.shape[1]), table.columns, rotation=45, ha="right")
    ax.set_yticks(np.arange(table.shape[0]), table.index.astype(str))
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel("corruption / severity")
    ax.set_ylabel("adapter")
    fig.colorbar(im, ax=ax, label=value)
    return fig


def adapter_ranking_plot(ranking: pd.DataFrame) -> Figure:
    """OOD accuracy against clean accuracy per adapter; distance below the diagonal = loss."""
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Adapter robustness: clean vs. OOD accuracy")
    if ranking.empty:
        return _empty(fig, ax, "no adapters")
    x = ranking["clean_accuracy"].to_numpy(dtype=float)
    y = ranking["ood_accuracy"].to_numpy(dtype=float)
    ax.scatter(x, y)
    for xi, yi, name in zip(x, y, ranking["adapter_id"].astype(str), strict=True):
        ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    lo = float(np.nanmin(np.r_[x, y, 1.0])) - 0.02
    ax.plot([lo, 1], [lo, 1], ls="--", color="gray", label="no degradation")
    ax.set_xlabel("clean accuracy")
    ax.set_ylabel("OOD accuracy (all corruptions)")
    ax.legend(loc="upper left")
    return fig


def accuracy_estimation_plot(estimation: pd.DataFrame) -> Figure:
    """Predicted vs measured OOD accuracy per adapter for each estimator (MAE in the legend)."""
    fig = Figure(figsize=(6, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("OOD accuracy estimation per adapter")
    measured = estimation["measured_ood_accuracy"].to_numpy(dtype=float)
    drawn = 0
    for method, label in METHOD_LABELS.items():
        col = f"{method}_pred"
        if col not in estimation.columns or estimation[col].isna().all():
            continue
        pred = estimation[col].to_numpy(dtype=float)
        mae = float(np.nanmean(np.abs(pred - measured)) * 100)
        ax.scatter(measured, pred, label=f"{label} (MAE {mae:.1f} pts)")
        drawn += 1
    if not drawn:
        return _empty(fig, ax, "no estimates")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", label="perfect estimate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("measured OOD accuracy")
    ax.set_ylabel("predicted OOD accuracy")
    ax.legend(loc="upper left")
    return fig
