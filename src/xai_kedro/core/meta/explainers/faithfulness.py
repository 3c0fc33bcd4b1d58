"""The explainer leaderboard (Gold `explainer_faithfulness`), its figure and its report section.

Input: one row per (image, adapter, explainer) from `core.xai.leaderboard.score_explainers`.
Per explainer and adapter, and pooled over adapters (`adapter_id == "all"`), the table holds the
mean of every score with a bootstrap interval over images (pooled: whole images resampled, since
one image appears under every adapter). Faithfulness is judged on four scores (deletion lower,
insertion higher, Fidelity+ higher, Fidelity- lower): each explainer's rank on each, averaged
(`mean_rank`, 1 = best on all four). `p_best` is the share of bootstrap resamples of images in
which the explainer has the best mean rank, i.e. how settled "most faithful" is, and
`rank_gap_ci_low/high` the interval of its mean rank minus the first's on the same resamples:
the report names a most faithful explainer only when every other's interval is above 0. The object
share (ground-truth masks) and the time per image are reported, not ranked.

Published reference: on ImageNet ViT-B, Chefer et al. (2021) rank gradient-weighted attention
above rollout above raw attention in perturbation tests; the report compares this model's order.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xai_kedro.core.meta.report.formatting import fmt
from xai_kedro.core.meta.stats.bootstrap import bootstrap_ci

KEYS = ["explainer", "adapter_id"]
POOLED = "all"
# score -> True when higher is more faithful; these four decide the ranking
RANKED_SCORES = {
    "deletion_auc": False,
    "insertion_auc": True,
    "fidelity_plus_auc": True,
    "fidelity_minus_auc": False,
}
REPORTED_SCORES = ("object_attention_share", "seconds_per_image")
SCORES = (*RANKED_SCORES, *REPORTED_SCORES)
PUBLISHED_RANKING = ("gradient_attention", "rollout", "attention")
# Explainers built from the same token-drop queries the scores use: the scores favour them.
QUERY_BASED = ("rise", "occlusion", "learned_mask")
SCORE_LABELS = {
    "deletion_auc": "deletion AUC (lower better)",
    "insertion_auc": "insertion AUC (higher better)",
    "fidelity_plus_auc": "Fidelity+ area (higher better)",
    "fidelity_minus_auc": "Fidelity- area (lower better)",
    "object_attention_share": "object share (higher better)",
    "seconds_per_image": "ms per image",
}


def _check_scores(scores: pd.DataFrame) -> pd.DataFrame:
    needed = ["image_id", *KEYS, *SCORES]
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise ValueError(f"explainer scores lack columns {missing}")
    duplicated = scores.duplicated(["image_id", *KEYS])
    if duplicated.any():
        raise ValueError(
            f"{int(duplicated.sum())} duplicate (image_id, explainer, adapter_id) rows"
        )
    counts = scores.groupby("adapter_id")["explainer"].nunique()
    per_unit = scores.groupby(["adapter_id", "image_id"])["explainer"].nunique()
    if (per_unit != per_unit.index.get_level_values(0).map(counts)).any():
        raise ValueError("every explainer must be scored on the same images of an adapter")
    return scores.sort_values(["adapter_id", "image_id", "explainer"], kind="stable")


def _nanmeans(*columns: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column (no masks) -> NaN
        return np.array([np.nanmean(c) if len(c) else np.nan for c in columns])


def _summarise(group: pd.DataFrame, n_boot: int, alpha: float, seed: int, clustered: bool) -> dict:
    arrays = [group[s].to_numpy(dtype=float) for s in SCORES]
    low, high = bootstrap_ci(
        _nanmeans,
        *arrays,
        n_boot=n_boot,
        alpha=alpha,
        seed=seed,
        groups=group["image_id"].to_numpy() if clustered else None,
    )
    row: dict = {"n_images": int(group["image_id"].nunique())}
    for i, (name, mean) in enumerate(zip(SCORES, _nanmeans(*arrays), strict=True)):
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = mean, low[i], high[i]
    return row


def _mean_ranks(means: np.ndarray) -> np.ndarray:
    """means [..., E, 4] (RANKED_SCORES order) -> mean rank [..., E], 1 = best; ties share."""
    signs = np.array([-1.0 if higher else 1.0 for higher in RANKED_SCORES.values()])
    oriented = means * signs  # lower = better on every column
    below = (oriented[..., None, :, :] < oriented[..., :, None, :]).sum(axis=-2)
    ties = (oriented[..., None, :, :] == oriented[..., :, None, :]).sum(axis=-2)
    return (1.0 + below + 0.5 * (ties - 1)).mean(axis=-1)


def _rank_replicates(
    scores: pd.DataFrame, explainers: list[str], n_boot: int, seed: int
) -> np.ndarray:
    """[n_boot, explainers] mean ranks on the pooled scores in image-cluster bootstrap resamples
    (every (image, adapter) a unit; whole images are drawn)."""
    wide = scores.pivot_table(
        index=["adapter_id", "image_id"], columns="explainer", values=list(RANKED_SCORES)
    )
    values = np.stack(
        [wide[s][explainers].to_numpy(dtype=float) for s in RANKED_SCORES], axis=-1
    )  # [U, E, 4]
    images, unit_image = np.unique(wide.index.get_level_values("image_id"), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(images), size=(n_boot, len(images)))
    counts = np.stack([np.bincount(d, minlength=len(images)) for d in draws])  # [n_boot, I]
    weights = counts[:, unit_image].astype(float)  # [n_boot, U]
    means = np.einsum("bu,uek->bek", weights, values) / weights.sum(axis=1)[:, None, None]
    return _mean_ranks(means)  # [n_boot, E]


def _p_best(ranks: np.ndarray) -> np.ndarray:
    """Share of resamples in which each explainer has the best mean rank (ties share)."""
    best = ranks == ranks.min(axis=1, keepdims=True)
    return (best / best.sum(axis=1, keepdims=True)).mean(axis=0)


def _rank_gap_intervals(
    ranks: np.ndarray, point: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per explainer, the interval of its mean rank minus that of the point estimate's best
    (> 0: separated from the best on these resamples; NaN for the best itself)."""
    best = int(np.argmin(point))
    gap = ranks - ranks[:, [best]]
    low, high = np.percentile(gap, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    low[best] = high[best] = np.nan
    return low, high


def explainer_faithfulness(
    scores: pd.DataFrame, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> pd.DataFrame:
    """Gold `explainer_faithfulness`: one row per (explainer, adapter_id) plus pooled rows."""
    scores = _check_scores(scores)
    if scores.empty:
        raise ValueError("no explainer scores: the leaderboard scored no image")
    explainers = sorted(scores["explainer"].unique())
    rows = []
    for (adapter, explainer), group in scores.groupby(["adapter_id", "explainer"], sort=True):
        summary = _summarise(group, n_boot, alpha, seed, clustered=False)
        rows.append({"explainer": explainer, "adapter_id": adapter, **summary})
    for explainer, group in scores.groupby("explainer", sort=True):
        summary = _summarise(group, n_boot, alpha, seed, clustered=True)
        rows.append({"explainer": explainer, "adapter_id": POOLED, **summary})
    table = pd.DataFrame(rows)
    pooled_rows = table["adapter_id"] == POOLED
    table["n_adapters"] = np.where(pooled_rows, scores["adapter_id"].nunique(), 1)
    parts = []
    for _, block in table.groupby("adapter_id", sort=False):
        block = block.copy()
        block["mean_rank"] = _mean_ranks(block[list(RANKED_SCORES)].to_numpy(dtype=float))
        block["rank"] = block["mean_rank"].rank(method="min").astype(int)
        parts.append(block)
    table = pd.concat(parts)
    ranks = _rank_replicates(scores, explainers, n_boot, seed)
    pooled_rows = table["adapter_id"] == POOLED
    point = table[pooled_rows].set_index("explainer")["mean_rank"].reindex(explainers)
    low, high = _rank_gap_intervals(ranks, point.to_numpy(dtype=float), alpha)
    columns = {"p_best": _p_best(ranks), "rank_gap_ci_low": low, "rank_gap_ci_high": high}
    for name, values in columns.items():
        per = table["explainer"].map(dict(zip(explainers, values, strict=True)))
        table[name] = np.where(pooled_rows, per, np.nan)
    table = table.assign(_pooled=pooled_rows.astype(int))
    table = table.sort_values(["_pooled", "adapter_id", "rank", "explainer"])
    return table.drop(columns="_pooled").reset_index(drop=True)


def published_agreement(order: Sequence[str]) -> tuple[list[str], int, int]:
    """This model's order of the published explainers, and how many of their pairs agree."""
    present = [e for e in order if e in PUBLISHED_RANKING]
    position = {e: i for i, e in enumerate(present)}
    pairs = [
        (a, b)
        for i, a in enumerate(PUBLISHED_RANKING)
        for b in PUBLISHED_RANKING[i + 1 :]
        if a in position and b in position
    ]
    agree = sum(position[a] < position[b] for a, b in pairs)
    return present, agree, len(pairs)


def _verdict(pooled: pd.DataFrame) -> str:
    """The first explainer in bold when every other's rank-gap interval is above 0, otherwise
    what it is not separated from (no verdict beyond the intervals)."""
    best, rest = pooled.iloc[0], pooled.iloc[1:]
    if "rank_gap_ci_low" not in pooled.columns:
        tied = list(rest["explainer"])
    else:
        tied = list(rest.loc[~(pd.to_numeric(rest["rank_gap_ci_low"]) > 0), "explainer"])
    if not tied:
        return f"**{best['explainer']}** (every other's rank-gap interval above 0)"
    return (
        f"not established: {best['explainer']} is first but not separated from "
        f"{', '.join(tied)} (mean-rank gap interval over images includes 0)"
    )


def faithfulness_section(table: pd.DataFrame) -> list[str]:
    """Markdown lines: the most faithful explainer here and the comparison with the literature."""
    lines = ["## Explainer faithfulness"]
    pooled = table[table["adapter_id"] == POOLED].sort_values(["mean_rank", "explainer"])
    if pooled.empty:
        return [*lines, "No explainer was scored."]
    best = pooled.iloc[0]
    n_adapters = int(best["n_adapters"])
    lines.append(
        f"Most faithful on this model: {_verdict(pooled)} (mean rank "
        f"{fmt(best['mean_rank'], '.2f')} of {len(pooled)} over deletion, insertion, Fidelity+ and "
        f"Fidelity-; best in {fmt(100 * best['p_best'], '.0f')}% of image bootstrap resamples; "
        f"{int(best['n_images'])} test images x {n_adapters} adapter(s))."
    )
    if best["explainer"] in QUERY_BASED:
        inside = pooled[pooled["explainer"].isin(PUBLISHED_RANKING)]
        note = (
            f"{best['explainer']} is built from the same patch-removal queries that deletion, "
            "insertion and Fidelity score, which favours it"
        )
        if not inside.empty:
            note += (
                f"; among the attention-based explainers {inside.iloc[0]['explainer']} ranks first"
            )
        lines.append(note + ".")
    per_adapter = table[table["adapter_id"] != POOLED]
    winners = per_adapter[per_adapter["rank"] == 1].groupby("adapter_id")["explainer"].first()
    if len(winners) > 1:
        counts = winners.value_counts()
        lines.append(
            "Best per adapter: "
            + ", ".join(f"{name} on {n} of {len(winners)}" for name, n in counts.items())
            + "."
        )
    present, agree, pairs = published_agreement(list(pooled["explainer"]))
    if pairs:
        verdict = "agrees with" if agree == pairs else "differs from"
        lines.append(
            "Published ranking on ImageNet ViT-B (Chefer et al., 2021): gradient_attention > "
            f"rollout > attention. Here: {' > '.join(present)}, which {verdict} it "
            f"({agree} of {pairs} pairs in the published order)."
        )
    lines += [
        "",
        "| explainer | deletion | insertion | Fidelity+ | Fidelity- | object share | ms/image |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in pooled.iterrows():
        cells = [
            f"{fmt(r[s])} [{fmt(r[f'{s}_ci_low'])}, {fmt(r[f'{s}_ci_high'])}]"
            for s in (*RANKED_SCORES, "object_attention_share")
        ]
        ms = fmt(1000 * r["seconds_per_image"], ".2f")
        lines.append(f"| {r['explainer']} | " + " | ".join(cells) + f" | {ms} |")
    lines.append("")
    lines.append("Means over test images with 95% bootstrap intervals (whole images resampled).")
    return lines


def faithfulness_plot(table: pd.DataFrame) -> Figure:
    """Pooled scores of every explainer with their intervals, one panel per score."""
    pooled = table[table["adapter_id"] == POOLED].sort_values(["mean_rank", "explainer"])
    fig = Figure(
        figsize=(3.2 * len(SCORES), 0.45 * max(len(pooled), 3) + 1.6), layout="constrained"
    )
    axes = fig.subplots(1, len(SCORES), sharey=True)
    fig.suptitle("Explainer faithfulness (pooled over adapters, 95% bootstrap CI)")
    y = np.arange(len(pooled))
    for ax, score in zip(axes, SCORES, strict=True):
        scale = 1000.0 if score == "seconds_per_image" else 1.0
        mean = pooled[score].to_numpy(dtype=float) * scale
        low = pooled[f"{score}_ci_low"].to_numpy(dtype=float) * scale
        high = pooled[f"{score}_ci_high"].to_numpy(dtype=float) * scale
        # clipped: a percentile interval can miss the mean by rounding (or skew)
        err = np.clip(np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0), 0.0, None)
        ax.barh(y, np.nan_to_num(mean), xerr=err, color="tab:blue", capsize=3)
        ax.set_title(SCORE_LABELS[score], fontsize=9)
        ax.axvline(0, color="black", lw=0.6)
    axes[0].set_yticks(y, pooled["explainer"].astype(str))
    axes[0].invert_yaxis()  # most faithful on top
    return fig
