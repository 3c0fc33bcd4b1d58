"""What the knowledge-injection run found, written from its numbers: report, plot, gallery."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xai_kedro.core.injection.measure import (
    ALL_CONDITIONS,
    CONTRASTS,
    NOT_SEPARATED,
    OOD_METRIC,
    POOLED,
    REPLICATED_ARMS,
    contrast_name,
)
from xai_kedro.core.xai.gallery import heatmap_overlay

METRIC_LABELS = {
    "clean_accuracy": "clean accuracy",
    "ood_accuracy": "OOD accuracy",
    "object_attention_share": "object attention share",
    "deletion_auc": "deletion AUC (lower = faithful)",
    "insertion_auc": "insertion AUC",
}
TARGETED_VS_CONTROL = contrast_name("targeted", "control")
#: What a separated contrast says: (when better, when worse).
CONTRAST_WORDS = {
    TARGETED_VS_CONTROL: (
        "Targeted data beats the untargeted control",
        "Targeted data is worse than the untargeted control",
    ),
    contrast_name("targeted", "baseline_retrained"): (
        "Targeted data beats retraining without new data",
        "Targeted data is worse than retraining without new data",
    ),
    contrast_name("control", "baseline_retrained"): (
        "Untargeted extra images beat retraining without new data",
        "Untargeted extra images are worse than retraining without new data",
    ),
}


def _num(value: object, spec: str = ".3f") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not math.isfinite(number) else format(number, spec)


def _interval(row: pd.Series) -> str:
    return (
        f"{_num(row['value'], '+.3f')} [{_num(row['ci_low'], '+.3f')}, "
        f"{_num(row['ci_high'], '+.3f')}]"
    )


def _metric_name(metric: str, corruption: object) -> str:
    name = METRIC_LABELS.get(metric, metric)
    if metric == OOD_METRIC and corruption not in (None, ALL_CONDITIONS) and pd.notna(corruption):
        return f"{name}, {corruption}"
    if metric == OOD_METRIC:
        return f"{name}, all corruptions"
    return name


def _find(table: pd.DataFrame, scope: str, metric: str, corruption: object, comparison: str):
    """The table's row of one scope, metric, corruption and arm or contrast (None if absent)."""
    part = table[
        (table["adapter_id"] == scope)
        & (table["metric"] == metric)
        & (table["comparison"] == comparison)
    ]
    if corruption is None or pd.isna(corruption):
        part = part[part["corruption"].isna()]
    else:
        part = part[part["corruption"] == corruption]
    return part.iloc[0] if len(part) else None


def answer_sentence(
    table: pd.DataFrame,
    scope: str,
    metric: str,
    corruption: object,
    contrast: str = TARGETED_VS_CONTROL,
) -> str:
    """One sentence from a contrast's interval: a verdict only when it excludes 0, else "not
    separated" with the smallest effect the comparison could have detected."""
    row = _find(table, scope, metric, corruption, contrast)
    name = _metric_name(metric, corruption)
    if row is None:
        return f"{name}: not measured."
    better, worse = CONTRAST_WORDS.get(contrast, (f"{contrast} > 0", f"{contrast} < 0"))
    seeds = f"{int(row['n_seeds'])} seeds per arm, seed-to-seed SD {_num(row['seed_sd'])}"
    diff = f"{_interval(row)} ({seeds})"
    if row["verdict"] == "better":
        return f"**{better}** on {name}: {diff}."
    if row["verdict"] == "worse":
        return f"**{worse}** on {name}: {diff}."
    if row["verdict"] == NOT_SEPARATED:
        return (
            f"**Not separated**: {contrast} on {name} = {diff}, an interval that includes 0; "
            f"smallest detectable effect {_num(row['detectable'])} (80 % power, alpha 0.05, "
            "2.8 x SE)."
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
    seeds = int(table["n_seeds"].max()) if len(table) else 0
    lines = _intro_lines(images, generator, diagnosis_split, ci_alpha, seeds)
    scopes = _scopes(table)
    if not scopes:
        return "\n".join([*lines, "No adapter was refined, so nothing was measured.", ""])
    lines += _answer_lines(table, scopes)
    lines += _profile_lines(profiles)
    lines += _arm_lines(table, scopes)
    lines += _contrast_lines(table, scopes)
    lines += [
        "",
        "A verdict (`better`/`worse`) is given only where the interval of the difference "
        "excludes 0 (for deletion AUC lower is better), `not separated` otherwise; the smallest "
        "detectable effect is 2.8 x the difference's standard error (from the interval's width): "
        "a `not separated` difference is no larger than about that.",
        "",
    ]
    return "\n".join(lines)


def _intro_lines(
    images: pd.DataFrame, generator: str, diagnosis_split: str, ci_alpha: float, seeds: int
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
        "targeted training images from them. Each adapter was retrained with its zoo config on "
        "the training split plus one of three equally large sets (so the same number of steps "
        "on the same schedule): `targeted`; `control`, augmented training images drawn without "
        "the diagnosis in the targeted set's class mix; `baseline_retrained`, unchanged copies "
        f"of training images (no new data); each with {seeds} training seeds.",
        "",
        "Images added per adapter and arm: "
        + ", ".join(f"{a}: {int(sizes.get(a, 0))}" for a in adapters)
        + f". Values are means over the {seeds} seeds of the mean over the test images; "
        f"differences are paired on the same test images, with {confidence} intervals that "
        "resample both the seeds and the test images (two-way bootstrap). `baseline` is the zoo "
        "adapter as trained (one run).",
        "",
        "## Answer",
        "",
    ]


def _answer_lines(table: pd.DataFrame, scopes: list[str]) -> list[str]:
    """The headline answer (pooled when there is a pooled row), then one line per adapter."""
    headline = scopes[0]
    where = "over all refined adapters" if headline == POOLED else f"for {headline}"
    lines = []
    for contrast in CONTRAST_WORDS:
        for metric, corruption in (("clean_accuracy", None), (OOD_METRIC, ALL_CONDITIONS)):
            name = _metric_name(metric, corruption)
            label = name[0].upper() + name[1:]
            sentence = answer_sentence(table, headline, metric, corruption, contrast)
            lines.append(f"- {label} ({where}): {sentence}")
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


def _keys(table: pd.DataFrame) -> list[tuple[str, object]]:
    keys = table[["metric", "corruption"]].drop_duplicates()
    return [
        (k.metric, None if pd.isna(k.corruption) else k.corruption)
        for k in keys.itertuples(index=False)
    ]


def _arm_lines(table: pd.DataFrame, scopes: list[str]) -> list[str]:
    """Every arm per scope and metric: mean over seeds, its spread, each seed's value."""
    lines = [
        "",
        "## The arms on the test split",
        "",
        "| adapter | metric | arm | mean | seed SD | per seed | interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for scope in scopes:
        for metric, corruption in _keys(table):
            for arm in ("baseline", *REPLICATED_ARMS):
                row = _find(table, scope, metric, corruption, arm)
                if row is None:
                    continue
                per_seed = ", ".join(_num(v) for v in row["seed_values"])
                lines.append(
                    f"| {scope} | {_metric_name(metric, corruption)} | {arm} | "
                    f"{_num(row['value'])} | {_num(row['seed_sd'])} | {per_seed} | "
                    f"[{_num(row['ci_low'])}, {_num(row['ci_high'])}] |"
                )
    return lines


def _contrast_lines(table: pd.DataFrame, scopes: list[str]) -> list[str]:
    """The three paired differences per scope and metric, with their verdicts."""
    lines = [
        "",
        "## Differences between the arms",
        "",
        "| adapter | metric | difference | mean [interval] | seed SD | smallest detectable "
        "| verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for scope in scopes:
        for metric, corruption in _keys(table):
            for contrast in (contrast_name(*c) for c in CONTRASTS):
                row = _find(table, scope, metric, corruption, contrast)
                if row is None:
                    continue
                lines.append(
                    f"| {scope} | {_metric_name(metric, corruption)} | {contrast} | "
                    f"{_interval(row)} | {_num(row['seed_sd'])} | {_num(row['detectable'])} | "
                    f"{row['verdict']} |"
                )
    return lines


def injection_plot(table: pd.DataFrame) -> Figure:
    """Per adapter (and pooled): the three paired differences with their two-way intervals, for
    clean accuracy and OOD accuracy overall and per corruption."""
    scopes = _scopes(table)
    figure = Figure(figsize=(11, 1.0 + 2.8 * max(1, len(scopes))), layout="constrained")
    axes = np.atleast_1d(figure.subplots(max(1, len(scopes)), 1))
    keys = [k for k in _keys(table) if k[0] in ("clean_accuracy", OOD_METRIC)]
    labels = [_metric_name(*k) for k in keys]
    contrasts = [contrast_name(*c) for c in CONTRASTS]
    height = 0.8 / len(contrasts)
    for ax, scope in zip(axes, scopes or [None], strict=False):
        if scope is None:
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center")
            ax.axis("off")
            continue
        for d, contrast in enumerate(contrasts):
            rows = [
                _find(table, scope, metric, corruption, contrast) for metric, corruption in keys
            ]
            means = np.array([float(r["value"]) if r is not None else np.nan for r in rows])
            lows = np.array([float(r["ci_low"]) if r is not None else np.nan for r in rows])
            highs = np.array([float(r["ci_high"]) if r is not None else np.nan for r in rows])
            errors = np.nan_to_num(np.abs([means - lows, highs - means]))
            positions = np.arange(len(means)) + (d - 1) * height
            ax.barh(positions, means, height=height, xerr=errors, capsize=2, label=contrast)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(np.arange(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_title(f"{scope}: differences in accuracy, mean over seeds (seed x image intervals)")
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
