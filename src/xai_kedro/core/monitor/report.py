"""The batch report: a short markdown page and one figure (estimates with their measured error,
and the batch's failure-risk distribution), written by the monitor pipeline and logged to MLflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _fmt(value: Any, points: bool = False) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.1f}" if points else f"{100.0 * value:.1f}%"


def _estimate(r: Any) -> str:
    """The clipped estimate, and the method's own value where clipping to [0, 1] changed it."""
    text = _fmt(r.estimated_accuracy)
    raw = getattr(r, "raw_estimate", r.estimated_accuracy)
    if np.isfinite(raw) and raw != r.estimated_accuracy:
        text += f" (raw {_fmt(raw)})"
    return text


def estimates_markdown(estimates: pd.DataFrame) -> list[str]:
    """The estimates table: one line per method, its estimate and measured error."""
    lines = [
        "| method | estimated accuracy | measured MAE (points) | worst error (points) | status |",
        "|---|---|---|---|---|",
    ]
    for r in estimates.itertuples(index=False):
        lines.append(
            f"| {r.label} | {_estimate(r)} | {_fmt(r.measured_mae_points, True)} "
            f"| {_fmt(r.measured_max_error_points, True)} | {r.status} |"
        )
    return lines


def batch_report(
    images: pd.DataFrame,
    estimates: pd.DataFrame,
    drift: Mapping[str, Any],
    info: Mapping[str, Any],
    n_quarantined: int,
) -> str:
    """Markdown: what was monitored, the drift test, the estimates, the riskiest images."""
    risk = images["failure_risk"].to_numpy(dtype=float)
    verdict = "DRIFT" if drift.get("drift") else "no drift detected"
    lines = [
        "# Monitor: batch report",
        "",
        f"- source: `{info.get('source')}`; model: `{info.get('model_uri')}` "
        f"(adapter `{info.get('adapter_id')}`)",
        f"- images scored: {len(images)}; quarantined: {n_quarantined}",
        f"- embedding drift (MMD permutation test, Gretton et al. 2012): **{verdict}** "
        f"(MMD^2 = {drift.get('mmd2', float('nan')):.4g}, p = {drift.get('p_value', float('nan')):.3g}, "
        f"alpha = {drift.get('alpha')}, {drift.get('n_batch')} batch vs "
        f"{drift.get('n_reference')} Bronze reference embeddings)",
        f"- failure risk: mean {np.mean(risk):.3f}, images over 0.5: {int((risk > 0.5).sum())}"
        if len(risk)
        else "- failure risk: no image",
        "",
        "## Estimated accuracy on the batch",
        "",
        "Each estimate sits beside the method's error as measured on the project's own shifts "
        "(`accuracy_estimation_summary`, all corruptions pooled; the per-batch regressor's on "
        "the evaluation's test batches). Estimates are clipped to [0, 100]%; the raw value is "
        "shown where it was outside.",
        "",
        *estimates_markdown(estimates),
        "",
        "## Riskiest images",
        "",
        "| image | predicted | confidence | failure risk |",
        "|---|---|---|---|",
    ]
    top = images.sort_values("failure_risk", ascending=False, kind="stable").head(10)
    for r in top.itertuples(index=False):
        lines.append(
            f"| `{r.source_path}` | {r.class_name} | {r.confidence:.3f} | {r.failure_risk:.3f} |"
        )
    return "\n".join(lines) + "\n"


def batch_figure(images: pd.DataFrame, estimates: pd.DataFrame) -> Figure:
    """Left: each method's estimate with its measured MAE as an error bar; right: the batch's
    failure-risk histogram."""
    fig = Figure(figsize=(11, 4.2))
    ax, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    ok = estimates[estimates["estimated_accuracy"].notna()]
    y = np.arange(len(ok))
    err = ok["measured_mae_points"].to_numpy(dtype=float) / 100.0
    ax.errorbar(
        100 * ok["estimated_accuracy"], y, xerr=100 * np.nan_to_num(err), fmt="o", capsize=3
    )
    ax.set_yticks(y, ok["label"].tolist())
    ax.invert_yaxis()
    ax.set_xlabel("estimated accuracy on the batch (%), bar = measured MAE")
    hist.hist(images["failure_risk"].to_numpy(dtype=float), bins=20, range=(0, 1))
    hist.set_xlabel("failure risk per image")
    hist.set_ylabel("images")
    fig.tight_layout()
    return fig
