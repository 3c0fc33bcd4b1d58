"""What the knowledge-injection run found, written from its numbers: report, plot, gallery."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xai_kedro.core.injection.measure import ALL_CONDITIONS, OOD_METRIC, POOLED
from xai_kedro.core.xai.gallery import heatmap_overlay

METRIC_LABELS = {
    "clean_accuracy": "clean accuracy",
    "ood_accuracy": "OOD accuracy",
    "object_attention_share": "object attention share",
    "deletion_auc": "deletion AUC (lower = faithful)",
    "insertion_auc": "insertion AUC",
}
DIFFERENCES = (
    ("targeted - baseline", "targeted", "diff_vs_baseline"),
    ("control - baseline", "control", "diff_vs_baseline"),
    ("targeted - control", "targeted", "diff_vs_control"),
)


def _num(value: object, spec: str = ".3f") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not math.isfinite(number) else format(number, spec)


def _interval(row: pd.Series, prefix: str) -> str:
    return (
        f"{_num(row[prefix], '+.3f')} [{_num(row[prefix + '_low'], '+.3f')}, "
        f"{_num(row[prefix + '_high'], '+.3f')}]"
    )


def _metric_name(metric: str, corruption: object) -> str:
    name = METRIC_LABELS.get(metric, metric)
    if metric == OOD_METRIC and corruption not in (None, ALL_CONDITIONS) and pd.notna(corruption):
        return f"{name}, {corruption}"
    if metric == OOD_METRIC:
        return f"{name}, all corruptions"
    return name


def _arm_row(table: pd.DataFrame, scope: str, metric: str, corruption: object, arm: str):
    part = table[
        (table["adapter_id"] == scope) & (table["metric"] == metric) & (table["arm"] == arm)
    ]
    if corruption is None:
        part = part[part["corruption"].isna()]
    else:
        part = part[part["corruption"] == corruption]
    return part.iloc[0] if len(part) else None


def answer_sentence(table: pd.DataFrame, scope: str, metric: str, corruption: object) -> str:
    """One sentence: does targeted data beat the control on this metric, from the interval."""
    row = _arm_row(table, scope, metric, corruption, "targeted")
    name = _metric_name(metric, corruption)
    if row is None:
        return f"{name}: not measured."
    diff = _interval(row, "diff_vs_control")
    outcome = row["verdict"]
    if outcome == "better":
        return f"**Targeted data beats the untargeted control** on {name}: {diff}."
    if outcome == "worse":
        return f"**Targeted data is worse than the untargeted control** on {name}: {diff}."
    if outcome == "no effect":
        return (
            f"**No effect** of targeting on {name}: targeted - control = {diff}, an interval "
            "that includes 0."
        )
    return f"{name}: no data to compare."


def _scopes(table: pd.DataFrame) -> list[str]:
    adapters = [a for a in dict.fromkeys(table["adapter_id"]) if a != POOLED]
    return ([POOLED] if POOLED in set(table["adapter_id"]) else []) + adapters


def injection_report(
    profiles: pd.DataFrame,
    table: pd.DataFrame,
    images: pd.DataFrame,
    generator: str,
    diagnosis_split: str,
    ci_alpha: float,
) -> str:
    """The markdown report section of the knowledge-injection pipeline."""
    lines = _intro_lines(images, generator, diagnosis_split, ci_alpha)
    scopes = _scopes(table)
    if not scopes:
        return "\n".join([*lines, "No adapter was refined, so nothing was measured.", ""])
    lines += _answer_lines(table, scopes)
    lines += _profile_lines(profiles)
    lines += _comparison_lines(table, scopes)
    lines += [
        "",
        "A verdict compares targeted with control: `better`/`worse` when the interval of their "
        "difference excludes 0 (for deletion AUC lower is better), `no effect` otherwise.",
        "",
    ]
    return "\n".join(lines)


def _intro_lines(
    images: pd.DataFrame, generator: str, diagnosis_split: str, ci_alpha: float
) -> list[str]:
    """What was diagnosed, generated and retrained, up to the `## Answer` heading."""
    confidence = f"{100 * (1 - ci_alpha):g} %"
    adapters = sorted(set(images["adapter_id"])) if len(images) else []
    sizes = images[images["arm"] == "targeted"].groupby("adapter_id").size() if len(images) else {}
    return [
        "# Knowledge injection: does XAI-guided training data help?",
        "",
        f"Failures of {', '.join(adapters) or 'no adapter'} were diagnosed on the "
        f"`{diagnosis_split}` split (never the test split). The `{generator}` generator made "
        "targeted training images from them; the untargeted control adds exactly as many "
        "augmented training images drawn without the diagnosis. Each adapter was retrained "
        "with the same config and seed on the training split plus either set.",
        "",
        "Images added per adapter: "
        + ", ".join(f"{a}: {int(sizes.get(a, 0))}" for a in adapters)
        + ". Differences are paired on the same test images, with "
        f"{confidence} image-clustered bootstrap intervals.",
        "",
        "## Answer",
        "",
    ]


def _answer_lines(table: pd.DataFrame, scopes: list[str]) -> list[str]:
    """The headline answer (pooled when there is a pooled row), then one line per adapter."""
    headline = scopes[0]
    where = "over all refined adapters" if headline == POOLED else f"for {headline}"
    lines = [
        f"- Clean accuracy ({where}): " + answer_sentence(table, headline, "clean_accuracy", None),
        f"- OOD accuracy ({where}): "
        + answer_sentence(table, headline, OOD_METRIC, ALL_CONDITIONS),
    ]
    for scope in scopes[1:] if headline == POOLED else []:
        lines.append(
            f"- {scope}: "
            + answer_sentence(table, scope, "clean_accuracy", None)
            + " "
            + answer_sentence(table, scope, OOD_METRIC, ALL_CONDITIONS)
        )
    return lines


def _profile_lines(profiles: pd.DataFrame) -> list[str]:
    """The failing classes of the diagnosis split and the reason each fails."""
    lines = [
        "",
        "## Failure profiles (diagnosis split)",
        "",
        "| adapter | class | accuracy | reason |",
        "|---|---|---|---|",
    ]
    failing = profiles[profiles["is_failing"]] if len(profiles) else profiles
    for row in failing.itertuples(index=False):
        lines.append(
            f"| {row.adapter_id} | {row.label_name} | {_num(row.accuracy)} | {row.reason} |"
        )
    if not len(failing):
        lines.append("| - | - | - | no class fails |")
    return lines


def _comparison_lines(table: pd.DataFrame, scopes: list[str]) -> list[str]:
    """The three arms and their paired differences, per scope and metric."""
    lines = [
        "",
        "## Baseline, targeted and control on the test split",
        "",
        "| adapter | metric | baseline | targeted | control | targeted - baseline | "
        "control - baseline | targeted - control | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keys = table[["metric", "corruption"]].drop_duplicates()
    for scope in scopes:
        for key in keys.itertuples(index=False):
            corruption = None if pd.isna(key.corruption) else key.corruption
            arms = {
                a: _arm_row(table, scope, key.metric, corruption, a)
                for a in ("baseline", "targeted", "control")
            }
            if any(v is None for v in arms.values()):
                continue
            lines.append(
                f"| {scope} | {_metric_name(key.metric, corruption)} | "
                f"{_num(arms['baseline']['value'])} | {_num(arms['targeted']['value'])} | "
                f"{_num(arms['control']['value'])} | {_interval(arms['targeted'], 'diff_vs_baseline')} | "
                f"{_interval(arms['control'], 'diff_vs_baseline')} | "
                f"{_interval(arms['targeted'], 'diff_vs_control')} | {arms['targeted']['verdict']} |"
            )
    return lines


def injection_plot(table: pd.DataFrame) -> Figure:
    """Per adapter (and pooled): the three paired differences with their intervals, for clean
    accuracy and OOD accuracy overall and per corruption."""
    scopes = _scopes(table)
    figure = Figure(figsize=(11, 1.0 + 2.8 * max(1, len(scopes))), layout="constrained")
    axes = np.atleast_1d(figure.subplots(max(1, len(scopes)), 1))
    accuracy = table[table["metric"].isin(["clean_accuracy", OOD_METRIC])]
    keys = accuracy[["metric", "corruption"]].drop_duplicates()
    labels = [
        _metric_name(k.metric, None if pd.isna(k.corruption) else k.corruption)
        for k in keys.itertuples()
    ]
    height = 0.8 / len(DIFFERENCES)
    for ax, scope in zip(axes, scopes or [None], strict=False):
        if scope is None:
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center")
            ax.axis("off")
            continue
        for d, (name, arm, prefix) in enumerate(DIFFERENCES):
            means, errors = [], [[], []]
            for key in keys.itertuples(index=False):
                corruption = None if pd.isna(key.corruption) else key.corruption
                row = _arm_row(table, scope, key.metric, corruption, arm)
                mean = float(row[prefix]) if row is not None else float("nan")
                means.append(mean)
                errors[0].append(mean - float(row[prefix + "_low"]) if row is not None else 0.0)
                errors[1].append(float(row[prefix + "_high"]) - mean if row is not None else 0.0)
            positions = np.arange(len(means)) + (d - 1) * height
            ax.barh(positions, means, height=height, xerr=np.abs(errors), capsize=2, label=name)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(np.arange(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_title(f"{scope}: paired differences in accuracy (bootstrap intervals)")
        ax.set_xlabel("difference")
    axes[0].legend(fontsize="small", loc="lower right")
    return figure


def _caption(details: str) -> str:
    info = json.loads(details) if isinstance(details, str) and details else {}
    if "texture_of_class" in info:
        return f"on {info['texture_of_class']}'s texture"
    if "background_of_class" in info:
        return f"on a {info['background_of_class']} background"
    return ""


def injection_gallery(
    failures: pd.DataFrame,
    failure_images: dict[str, np.ndarray],
    generated: pd.DataFrame,
    class_names: Sequence[str],
    max_failures: int,
    per_failure: int,
) -> Figure:
    """Rows of: a failing validation image with its attention, then images generated for it."""
    targeted = generated[generated["arm"] == "targeted"]
    motivated = set(targeted["motivated_by"].dropna())
    shown = failures[
        failures["image_id"].isin(motivated) & failures["image_id"].isin(failure_images)
    ]
    shown = shown.sort_values(["confidence", "image_id"], ascending=[False, True])
    shown = shown.drop_duplicates(["adapter_id", "image_id"]).head(int(max_failures))
    rows = max(1, len(shown))
    columns = 1 + int(per_failure)
    figure = Figure(figsize=(2.4 * columns, 2.6 * rows), layout="constrained")
    axes = np.atleast_2d(figure.subplots(rows, columns))
    for ax in axes.ravel():
        ax.axis("off")
    if shown.empty:
        axes[0, 0].text(0.5, 0.5, "no failure with generated images", ha="center", va="center")
    for r, failure in enumerate(shown.itertuples(index=False)):
        image = failure_images[failure.image_id]
        ax = axes[r, 0]
        ax.imshow(image)
        if failure.heatmap is not None and len(failure.heatmap):
            ax.imshow(
                heatmap_overlay(image, failure.heatmap), cmap="jet", alpha=0.5, vmin=0, vmax=1
            )
        ax.set_title(
            f"{failure.adapter_id}: {failure.label_name}\n{failure.kind}"
            f" (pred {class_names[int(failure.pred)]})",
            fontsize=7,
        )
        made = targeted[
            (targeted["motivated_by"] == failure.image_id)
            & (targeted["adapter_id"] == failure.adapter_id)
        ].head(int(per_failure))
        for c, item in enumerate(made.itertuples(index=False), start=1):
            pixels = np.frombuffer(item.pixels, dtype=np.uint8).reshape(item.height, item.width, 3)
            axes[r, c].imshow(pixels)
            axes[r, c].set_title(f"{item.label_name} {_caption(item.details)}", fontsize=7)
    figure.suptitle("Failures (validation split, attention overlay) and their generated images")
    return figure


def class_names_of(labels: Sequence[int], names: Sequence[str]) -> tuple[str, ...]:
    """label -> name as a tuple indexed by label (labels must be 0..K-1)."""
    mapping = dict(zip((int(k) for k in labels), names, strict=True))
    if sorted(mapping) != list(range(len(mapping))):
        raise ValueError(f"labels must be 0..K-1, got {sorted(mapping)}")
    return tuple(mapping[k] for k in range(len(mapping)))
