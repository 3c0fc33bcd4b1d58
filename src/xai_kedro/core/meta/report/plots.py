"""Gold-layer figures. Each function returns a ``matplotlib.figure.Figure`` built without pyplot
(no global state, no GUI backend: safe in Kedro runners and worker threads); Kedro saves it."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from sklearn.metrics import roc_curve

from xai_kedro.core.meta.adapters.estimation import METHOD_LABELS, OVERALL
from xai_kedro.core.meta.prediction.features import XAI_SET

# accuracy_estimation_plot: panels per row, padding around the data (share of its span), the
# smallest span drawn (accuracy units) and the most families named in the legend
ESTIMATION_PLOT_COLUMNS = 4
ESTIMATION_PLOT_PAD = 0.08
ESTIMATION_PLOT_MIN_SPAN = 0.05
ESTIMATION_PLOT_MAX_LEGEND = 20
# adapter ranking: inches of figure height per adapter row, plus title and axis
RANKING_PLOT_ROW_IN = 0.22
RANKING_PLOT_BASE_IN = 1.6
# what the estimator abbreviations stand for, under the accuracy estimation panels
ESTIMATION_GLOSSARY = (
    "AC: average max-softmax confidence. DoC: difference of confidences (source accuracy minus "
    "the confidence drop). ATC: average thresholded confidence (MC: max confidence, NE: "
    "negative entropy).\nCOT: confidence optimal transport. MaNo: norm of the normalised "
    "logit matrix (paper eq.: without the authors' row-minimum shift). ALine: agreement on the "
    "line (S/D variants).\nMeta-regressor: random forest on per-adapter profiles. Baselines: "
    "the other families' mean OOD accuracy, or their clean -> OOD line. Every panel has the "
    "same axes."
)


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
    groups = corr.get("feature_group", pd.Series(["xai"] * len(corr))).astype(str)
    palette = {"xai": "tab:blue", "confidence": "tab:gray", "analysis": "tab:orange"}
    colors = [palette.get(g, "tab:gray") for g in groups]
    ax.barh(y, np.nan_to_num(values), xerr=err, color=colors, capsize=3)
    ax.set_yticks(y, corr["feature"].astype(str))
    ax.axvline(0, color="black", lw=0.8)
    ax.margins(y=0.02)
    if "pearson_p" in corr.columns:  # p-values in a column right of the frame, never on it
        side = ax.get_yaxis_transform()  # x in axes units, y in data units
        for yi, p_value in zip(y, corr["pearson_p"], strict=True):
            label = f"p={p_value:.2g}" if np.isfinite(p_value) else "p=n/a"
            ax.text(1.02, yi, label, transform=side, va="center", ha="left", fontsize=7)
    ax.set_xlabel(f"{stat} with is_correct\n(95% CI, images resampled; p from per-image means)")
    ax.set_ylabel("feature")
    present = [g for g in palette if g in set(groups)]
    if len(present) > 1:  # the colour key as a legend, not squeezed into the axis label
        handles = [Patch(color=palette[g], label=g) for g in present]
        ax.legend(handles=handles, title="feature group", loc="best", fontsize=7)
    return fig


def roc_curves(
    scores: pd.DataFrame, feature_set: str = XAI_SET, split: str = "grouped_oof"
) -> Figure:
    """ROC curve of every meta-learner on one feature set: image-grouped out-of-fold scores by
    default (``split="test"``: the reference's leaky stratified holdout)."""
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
    """One panel per kind of importance (gain shares, impurity shares and accuracy drops are not
    on one scale), features in the same order on every panel."""
    cols = [
        ("xgb_importance", "XGBoost gain (share)"),
        ("rf_importance", "RandomForest impurity (share)"),
        ("perm_importance", "permutation (accuracy drop)"),
    ]
    fig = Figure(figsize=(11, 0.45 * max(len(importance), 4) + 1.6), layout="constrained")
    axes = fig.subplots(1, len(cols), sharey=True)
    fig.suptitle("Meta-learner feature importance")
    if importance.empty or importance[[c for c, _ in cols]].isna().all().all():
        return _empty(fig, axes[0], "no importances")
    y = np.arange(len(importance))
    for ax, (col, label) in zip(axes, cols, strict=True):
        err = importance["perm_std"].fillna(0) if col == "perm_importance" else None
        ax.barh(y, importance[col].fillna(0), xerr=err, color="tab:blue", capsize=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("importance")
    axes[0].set_yticks(y, importance["feature"].astype(str))
    axes[0].set_ylabel("feature")
    axes[0].invert_yaxis()
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
    """One row per adapter, most robust on top: clean and OOD accuracy joined by a line whose
    length is the loss under shift. Names sit on their own rows (the figure grows with the zoo),
    so 7 or 48 adapters stay legible; the x axis is zoomed to the data."""
    n = len(ranking)
    height = RANKING_PLOT_BASE_IN + RANKING_PLOT_ROW_IN * max(n, 1)
    fig = Figure(figsize=(8, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Adapter robustness: clean vs. OOD accuracy (most robust on top)")
    if ranking.empty:
        return _empty(fig, ax, "no adapters")
    ordered = ranking.sort_values(["ood_accuracy", "adapter_id"], ascending=[False, True])
    clean = ordered["clean_accuracy"].to_numpy(dtype=float)
    ood = ordered["ood_accuracy"].to_numpy(dtype=float)
    rows = np.arange(n)
    ax.hlines(rows, ood, clean, color="lightgray", linewidth=2, zorder=1)
    ax.scatter(clean, rows, color="tab:blue", label="clean", zorder=2)
    ax.scatter(ood, rows, color="tab:red", label="OOD (all corruptions)", zorder=2)
    labels = [f"{r}. {name}" for r, name in enumerate(ordered["adapter_id"].astype(str), 1)]
    ax.set_yticks(rows, labels, fontsize=8 if n > 12 else 10)
    ax.set_ylim(n - 0.5, -0.5)
    values = np.r_[clean, ood]
    pad = ESTIMATION_PLOT_PAD * max(float(np.nanmax(values) - np.nanmin(values)), 0.05)
    ax.set_xlim(float(np.nanmin(values)) - pad, float(np.nanmax(values)) + pad)
    ax.set_xlabel("accuracy")
    ax.set_ylabel("adapter (rank by OOD accuracy)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: no overlap
    return fig


def accuracy_estimation_plot(estimation: pd.DataFrame, shift: str = OVERALL) -> Figure:
    """Predicted vs measured OOD accuracy per adapter, one panel per method (MAE and Spearman
    rho in the title), points coloured by config family, every panel on the same axes (zoomed
    to all the data), a glossary of the estimators under the panels."""
    rows = estimation[estimation["shift"] == shift] if "shift" in estimation.columns else estimation
    rows = rows.dropna(subset=["predicted_accuracy", "measured_accuracy"])
    methods = [m for m in METHOD_LABELS if m in set(rows["method"])]
    n_cols = min(ESTIMATION_PLOT_COLUMNS, max(len(methods), 1))
    n_rows = max(1, -(-len(methods) // n_cols))
    fig = Figure(figsize=(3.2 * n_cols + 1.5, 3.2 * n_rows + 0.8), layout="constrained")
    fig.suptitle(f"OOD accuracy estimation per adapter (shift: {shift})")
    if not methods:
        return _empty(fig, fig.add_subplot(), "no estimates")
    families = sorted(rows["family"].astype(str).unique()) if "family" in rows else ["all"]
    cmap = matplotlib.colormaps["tab20"]
    colour = {f: cmap(i % cmap.N) for i, f in enumerate(families)}
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    # one range for every panel, so a method's spread and bias compare at a glance
    shown = rows[rows["method"].isin(methods)]
    values = shown[["predicted_accuracy", "measured_accuracy"]].to_numpy(dtype=float)
    pad = ESTIMATION_PLOT_PAD * max(float(np.ptp(values)), ESTIMATION_PLOT_MIN_SPAN)
    lo, hi = float(values.min()) - pad, float(values.max()) + pad
    for ax, method in zip(axes, methods, strict=False):
        g = rows[rows["method"] == method]
        fam = g["family"].astype(str) if "family" in g else pd.Series("all", index=g.index)
        ax.scatter(
            g["measured_accuracy"],
            g["predicted_accuracy"],
            c=[colour[f] for f in fam],
            s=22,
            edgecolors="black",
            linewidths=0.3,
        )
        err = (g["predicted_accuracy"] - g["measured_accuracy"]).abs().mean() * 100
        rho = g["predicted_accuracy"].corr(g["measured_accuracy"], method="spearman")
        ax.set_title(f"{METHOD_LABELS[method]}\nMAE {err:.1f} pts, rho {rho:.2f}", fontsize=9)
        ax.plot([lo, hi], [lo, hi], ls="--", color="gray", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured OOD accuracy")
        ax.set_ylabel("predicted OOD accuracy")
    for ax in axes[len(methods) :]:
        ax.set_axis_off()
    if len(families) <= ESTIMATION_PLOT_MAX_LEGEND:
        handles = [Line2D([], [], ls="", marker="o", color=colour[f], label=f) for f in families]
        fig.legend(handles=handles, title="config family", loc="outside right upper", fontsize=7)
    fig.supxlabel(ESTIMATION_GLOSSARY, fontsize=7, wrap=True)
    return fig
