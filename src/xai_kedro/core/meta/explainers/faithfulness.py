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
share (ground-truth masks) and the time per image are reported, not ranked. Amortised explainers
(TVE, DAX) add their training seconds and every row its cost per (image, adapter) at 7 and 48
adapters; with a reference explainer, each score's paired gap to it per adapter, with intervals
(how faithful TVE's transfer stays on LoRA/DoRA adapters against the exact linear probe).

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
from xai_kedro.core.meta.stats.bootstrap import Resampling

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
# Training seconds of amortised explainers (`tve` per backbone, `dax` per adapter), 0 otherwise;
# optional in the input (scores written before they existed count as no training).
TRAINING = ("backbone_training_seconds", "adapter_training_seconds")
# The zoo sizes the cost per (image, adapter) is stated at: this base zoo and the zoo env's.
COST_ADAPTERS = (7, 48)
PUBLISHED_RANKING = ("gradient_attention", "rollout", "attention")
# Explainers built from the same token-drop queries the scores use: the scores favour them.
QUERY_BASED = ("rise", "occlusion", "learned_mask", "dax")
SCORE_LABELS = {
    "deletion_auc": "deletion AUC (lower better)",
    "insertion_auc": "insertion AUC (higher better)",
    "fidelity_plus_auc": "Fidelity+ area (higher better)",
    "fidelity_minus_auc": "Fidelity- area (lower better)",
    "object_attention_share": "object share (higher better)",
    "seconds_per_image": "ms per image",
}


def cost_column(adapters: int) -> str:
    """The Gold column of the cost per (image, adapter) at a zoo of `adapters` adapters."""
    return f"seconds_per_image_{adapters}_adapters"


def _check_scores(scores: pd.DataFrame) -> pd.DataFrame:
    scores = scores.assign(**{c: 0.0 for c in TRAINING if c not in scores.columns})
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


def _summarise(group: pd.DataFrame, boot: Resampling, clustered: bool) -> dict:
    arrays = [group[s].to_numpy(dtype=float) for s in SCORES]
    groups = group["image_id"].to_numpy() if clustered else None
    low, high = boot.interval(_nanmeans, *arrays, groups=groups)
    row: dict = {"n_images": int(group["image_id"].nunique())}
    for i, (name, mean) in enumerate(zip(SCORES, _nanmeans(*arrays), strict=True)):
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = mean, low[i], high[i]
    for name in TRAINING:  # one value per (adapter, explainer); pooled: the mean over adapters
        row[name] = float(group.groupby("adapter_id")[name].mean().mean())
    return row


def _amortised_costs(table: pd.DataFrame, amortise_images: int | None) -> pd.DataFrame:
    """seconds per image + adapter training / images + backbone training / (A x images), for
    A in COST_ADAPTERS; images: those each adapter explains (default: the images scored)."""
    images = table["n_images"] if amortise_images is None else amortise_images
    per_adapter = table["seconds_per_image"] + table["adapter_training_seconds"] / images
    costs = {
        cost_column(a): per_adapter + table["backbone_training_seconds"] / (a * images)
        for a in COST_ADAPTERS
    }
    return table.assign(amortised_over_images=images, **costs)


def _paired_gaps(scores: pd.DataFrame, reference: str, boot: Resampling) -> pd.DataFrame:
    """Per (explainer, adapter) and pooled: each ranked score minus the `reference` explainer's
    on the same (image, adapter), mean and bootstrap interval over images (pooled: clustered)."""
    wide = scores.pivot_table(
        index=["adapter_id", "image_id"], columns="explainer", values=list(RANKED_SCORES)
    )
    rows = []
    for explainer in sorted(scores["explainer"].unique()):
        gaps = pd.DataFrame(
            {s: wide[s][explainer] - wide[s][reference] for s in RANKED_SCORES}
        ).reset_index()
        parts = [(a, g, False) for a, g in gaps.groupby("adapter_id", sort=True)]
        for adapter, group, clustered in [*parts, (POOLED, gaps, True)]:
            arrays = [group[s].to_numpy(dtype=float) for s in RANKED_SCORES]
            groups = group["image_id"].to_numpy() if clustered else None
            low, high = boot.interval(_nanmeans, *arrays, groups=groups)
            row = {"explainer": explainer, "adapter_id": adapter}
            for i, (s, mean) in enumerate(zip(RANKED_SCORES, _nanmeans(*arrays), strict=True)):
                row[f"{s}_gap"], row[f"{s}_gap_ci_low"], row[f"{s}_gap_ci_high"] = (
                    mean,
                    low[i],
                    high[i],
                )
            rows.append(row)
    return pd.DataFrame(rows)


def _mean_ranks(means: np.ndarray) -> np.ndarray:
    """means [..., E, 4] (RANKED_SCORES order) -> mean rank [..., E], 1 = best; ties share."""
    signs = np.array([-1.0 if higher else 1.0 for higher in RANKED_SCORES.values()])
    oriented = means * signs  # lower = better on every column
    below = (oriented[..., None, :, :] < oriented[..., :, None, :]).sum(axis=-2)
    ties = (oriented[..., None, :, :] == oriented[..., :, None, :]).sum(axis=-2)
    return (1.0 + below + 0.5 * (ties - 1)).mean(axis=-1)


def _rank_replicates(scores: pd.DataFrame, explainers: list[str], boot: Resampling) -> np.ndarray:
    """[n_boot, explainers] mean ranks on the pooled scores in image-cluster bootstrap resamples
    (every (image, adapter) a unit; whole images are drawn)."""
    wide = scores.pivot_table(
        index=["adapter_id", "image_id"], columns="explainer", values=list(RANKED_SCORES)
    )
    values = np.stack(
        [wide[s][explainers].to_numpy(dtype=float) for s in RANKED_SCORES], axis=-1
    )  # [U, E, 4]
    images, unit_image = np.unique(wide.index.get_level_values("image_id"), return_inverse=True)
    rng = np.random.default_rng(boot.seed)
    draws = rng.integers(0, len(images), size=(boot.n_boot, len(images)))
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
    scores: pd.DataFrame,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    reference: str | None = None,
    amortise_images: int | None = None,
) -> pd.DataFrame:
    """Gold `explainer_faithfulness`: one row per (explainer, adapter_id) plus pooled rows.

    Besides the scores: the training seconds and the cost per (image, adapter) at each zoo size
    of COST_ADAPTERS (`_amortised_costs`); with `reference` (an explainer in the scores), each
    ranked score's paired gap to it with its interval (`<score>_gap*`, NaN without one), e.g.
    how far TVE's transferred explanation falls behind occlusion on the probe and on LoRA
    adapters."""
    scores = _check_scores(scores)
    if scores.empty:
        raise ValueError("no explainer scores: the leaderboard scored no image")
    explainers = sorted(scores["explainer"].unique())
    boot = Resampling(n_boot, alpha, seed)
    rows = []
    for (adapter, explainer), group in scores.groupby(["adapter_id", "explainer"], sort=True):
        summary = _summarise(group, boot, clustered=False)
        rows.append({"explainer": explainer, "adapter_id": adapter, **summary})
    for explainer, group in scores.groupby("explainer", sort=True):
        summary = _summarise(group, boot, clustered=True)
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
    ranks = _rank_replicates(scores, explainers, boot)
    pooled_rows = table["adapter_id"] == POOLED
    point = table[pooled_rows].set_index("explainer")["mean_rank"].reindex(explainers)
    low, high = _rank_gap_intervals(ranks, point.to_numpy(dtype=float), alpha)
    columns = {"p_best": _p_best(ranks), "rank_gap_ci_low": low, "rank_gap_ci_high": high}
    for name, values in columns.items():
        per = table["explainer"].map(dict(zip(explainers, values, strict=True)))
        table[name] = np.where(pooled_rows, per, np.nan)
    table = _amortised_costs(table, amortise_images)
    table = _with_gaps(table, scores, reference, boot)
    table = table.assign(_pooled=(table["adapter_id"] == POOLED).astype(int))
    table = table.sort_values(["_pooled", "adapter_id", "rank", "explainer"])
    return table.drop(columns="_pooled").reset_index(drop=True)


def _with_gaps(
    table: pd.DataFrame, scores: pd.DataFrame, reference: str | None, boot: Resampling
) -> pd.DataFrame:
    """The table with the paired-gap columns (NaN when no reference explainer was scored)."""
    if reference is not None and reference in set(scores["explainer"]):
        gaps = _paired_gaps(scores, reference, boot)
        return table.merge(gaps, on=KEYS, how="left", validate="one_to_one")
    columns = [f"{s}_gap{x}" for s in RANKED_SCORES for x in ("", "_ci_low", "_ci_high")]
    return table.assign(**{c: np.nan for c in columns})


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


def _not_separated(ranked: pd.DataFrame) -> list[str]:
    """The explainers after the first whose mean-rank gap to it has an interval reaching 0."""
    rest = ranked.iloc[1:]
    if "rank_gap_ci_low" not in ranked.columns:
        return list(rest["explainer"])
    return list(rest.loc[~(pd.to_numeric(rest["rank_gap_ci_low"]) > 0), "explainer"])


def _verdict(pooled: pd.DataFrame) -> str:
    """The first explainer in bold when every other's rank-gap interval is above 0, otherwise
    what it is not separated from (no verdict beyond the intervals)."""
    best = pooled.iloc[0]
    tied = _not_separated(pooled)
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
        lines.append(
            f"{best['explainer']} is built from the same patch-removal queries that deletion, "
            "insertion and Fidelity score, which favours it."
        )
    lines += _per_adapter_sentence(table[table["adapter_id"] != POOLED])
    present, agree, pairs = published_agreement(list(pooled["explainer"]))
    if pairs:
        verdict = "agrees with" if agree == pairs else "differs from"
        lines.append(
            "Published ranking on ImageNet ViT-B (Chefer et al., 2021): gradient_attention > "
            f"rollout > attention. Here, by mean rank: {' > '.join(present)}, which {verdict} it "
            f"({agree} of {pairs} pairs in the published order; a point order, the pairs'"
            " differences have no intervals)."
        )
    lines += ["", *_score_table(pooled), ""]
    lines.append(
        "Means over test images with 95% bootstrap intervals (whole images resampled). "
        "ms/image: the explanation alone; at 7 and 48 adapters: per (image, adapter) with the "
        "training of amortised explainers spread over the images each adapter explains "
        f"({_amortised_images(pooled)}) and, when trained once per backbone, over the adapters."
    )
    return [*lines, *transfer_section(table)]


def _per_adapter_sentence(per_adapter: pd.DataFrame) -> list[str]:
    """Per adapter, the first explainer only where its rank-gap intervals separate it."""
    if per_adapter["adapter_id"].nunique() < 2:
        return []
    if pd.to_numeric(per_adapter.get("rank_gap_ci_low", pd.Series(dtype=float))).isna().all():
        winners = per_adapter[per_adapter["rank"] == 1].groupby("adapter_id")["explainer"].first()
        counts = ", ".join(f"{n_} on {k}" for n_, k in winners.value_counts().items())
        return [f"First by mean rank per adapter (point order; rank-gap intervals are computed "
                f"for the pooled ranking only), of {len(winners)}: {counts}."]  # fmt: skip
    firsts = []
    for _, rows in per_adapter.groupby("adapter_id", sort=True):
        ranked = rows.sort_values(["mean_rank", "explainer"])
        separated = not _not_separated(ranked)
        firsts.append(ranked.iloc[0]["explainer"] if separated else None)
    named = pd.Series([f for f in firsts if f is not None], dtype=object).value_counts()
    parts = [f"{name} on {n}" for name, n in named.items()]
    open_ = sum(f is None for f in firsts)
    if open_:
        parts.append(f"no explainer separated from the others on {open_}")
    return [f"First per adapter (separated by rank-gap intervals), of {len(firsts)}: "
            + "; ".join(parts) + "."]  # fmt: skip


def _amortised_images(pooled: pd.DataFrame) -> str:
    values = sorted(set(pd.to_numeric(pooled.get("amortised_over_images", pd.Series())).dropna()))
    return ", ".join(f"{v:g}" for v in values) or "the images scored"


def _score_table(pooled: pd.DataFrame) -> list[str]:
    at = [a for a in COST_ADAPTERS if cost_column(a) in pooled.columns]
    head = "| explainer | deletion | insertion | Fidelity+ | Fidelity- | object share | ms/image |"
    lines = [
        head + "".join(f" ms at {a} adapters |" for a in at),
        "|---" * (7 + len(at)) + "|",
    ]
    for _, r in pooled.iterrows():
        cells = [
            f"{fmt(r[s])} [{fmt(r[f'{s}_ci_low'])}, {fmt(r[f'{s}_ci_high'])}]"
            for s in (*RANKED_SCORES, "object_attention_share")
        ]
        cells += [fmt(1000 * r[c], ".2f") for c in ("seconds_per_image", *map(cost_column, at))]
        lines.append(f"| {r['explainer']} | " + " | ".join(cells) + " |")
    return lines


def transfer_section(table: pd.DataFrame, explainer: str = "tve") -> list[str]:
    """Markdown lines: the transferred explainer on each adapter, against the reference.

    The transfer is exact for an adapter whose encoder is the frozen backbone (the linear probe)
    and approximate for LoRA/DoRA adapters: the per-adapter gaps to the reference explainer
    (paired per image) with their intervals show how much faithfulness the transfer keeps."""
    rows = table[(table["explainer"] == explainer) & (table["adapter_id"] != POOLED)]
    if (
        rows.empty
        or "deletion_auc_gap" not in rows.columns
        or rows["deletion_auc_gap"].isna().all()
    ):
        return []
    lines = [
        "",
        f"### {explainer} transferred to each adapter (gap to the reference explainer, "
        "paired per image)",
        "",
        "| adapter | " + " | ".join(SCORE_LABELS[s] for s in RANKED_SCORES) + " | rank here |",
        "|---" * (len(RANKED_SCORES) + 2) + "|",
    ]
    for _, r in rows.sort_values("adapter_id").iterrows():
        cells = [
            f"{fmt(r[f'{s}_gap'])} [{fmt(r[f'{s}_gap_ci_low'])}, {fmt(r[f'{s}_gap_ci_high'])}]"
            for s in RANKED_SCORES
        ]
        lines.append(f"| {r['adapter_id']} | " + " | ".join(cells) + f" | {int(r['rank'])} |")
    lines.append(
        "A gap interval that excludes 0 separates the transferred explanation from the "
        "reference on that adapter; the linear probe is where the transfer is exact."
    )
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
