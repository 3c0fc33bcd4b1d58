"""Gold `knowledge_injection`: targeted vs control vs baseline retrained, each trained with
several seeds, on the same test images, with intervals that carry both sources of uncertainty.

Every refined adapter is trained once per (arm, seed); every arm differs from the others only in
its extra training images, and every (arm, seed) is scored on the very same test images (and
corrupted pixels: the OOD seeds depend on the image and the condition only). An arm's value is
the mean over its seeds of the mean over the test images (a pooled scope `all` averages the
adapters). A difference between two arms would change with another test set *and* with other
training seeds, so its interval is a two-way bootstrap (`seed_image_replicates`): each replicate
draws the test images with replacement (one multiplicity per image, shared by every arm and
seed: paired) and the seed indices with replacement (shared by every arm: seed s of each arm
is one draw). An image contributes one value per corruption condition, averaged first, so the
image is the resampling unit.

Table (one row per adapter_id, metric, corruption and `comparison`): `kind` "arm" rows (the
arms: `baseline`, the zoo adapter as trained, one run; then each refined arm) and "contrast"
rows (`targeted - control`, `targeted - baseline_retrained`, `control - baseline_retrained`):
value, ci_low/ci_high, seed_sd and seed_values (per seed), n_seeds, n_images, and for contrasts
the smallest detectable effect and a verdict (better / worse only when the interval excludes 0,
else "not separated").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.meta.report.formatting import detectable_effect
from xai_kedro.core.meta.stats.bootstrap import BootstrapOptions, Resampling

BASELINE = "baseline"
REPLICATED_ARMS = ("targeted", "control", "baseline_retrained")
ARM_ORDER = (BASELINE, "baseline_retrained", "control", "targeted")
#: (minuend, subtrahend): what the targeting buys, what the extra data buys at all, what the
#: control's images (augmented, in the targeted class mix) buy over the training data alone.
CONTRASTS = (
    ("targeted", "control"),
    ("targeted", "baseline_retrained"),
    ("control", "baseline_retrained"),
)
#: The seed of the baseline arm's rows (the zoo adapter's own run, not a refinement seed).
BASELINE_SEED = -1
NOT_SEPARATED = "not separated"
POOLED = "all"
ALL_CONDITIONS = "all"
#: Clean-image metrics: source column in silver_xai, and whether higher is better.
CLEAN_METRICS: dict[str, tuple[str, bool]] = {
    "clean_accuracy": ("is_correct", True),
    "object_attention_share": ("object_attention_share", True),
    "deletion_auc": ("deletion_auc", False),
    "insertion_auc": ("insertion_auc", True),
}
OOD_METRIC = "ood_accuracy"
TABLE_COLUMNS = [
    "adapter_id", "metric", "corruption", "kind", "comparison", "value", "ci_low", "ci_high",
    "seed_sd", "seed_values", "n_seeds", "n_images", "higher_is_better", "detectable", "verdict",
]  # fmt: skip
_ROW = ["adapter_id", "arm", "seed"]


def contrast_name(minuend: str, subtrahend: str) -> str:
    return f"{minuend} - {subtrahend}"


@dataclass(frozen=True)
class MeasureSettings(BootstrapOptions, Settings):
    """n_bootstrap replicates, a (1 - ci_alpha) interval, and the bootstrap seed."""

    PATH = "knowledge_injection.measure"

    n_bootstrap: int = 1000
    ci_alpha: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n_bootstrap) < 1 or not 0.0 < float(self.ci_alpha) < 1.0:
            raise ValueError(
                "knowledge_injection.measure needs n_bootstrap >= 1 and 0 < ci_alpha < 1, got "
                f"{self.n_bootstrap}, {self.ci_alpha}"
            )


def with_arms(
    baseline: pd.DataFrame, refined: pd.DataFrame, injection_zoo: pd.DataFrame
) -> pd.DataFrame:
    """Baseline rows (zoo adapter ids) and refined rows (refined ids) in one frame keyed by the
    *base* adapter id, an `arm` and a training `seed` column (the baseline's: BASELINE_SEED)."""
    lookup = injection_zoo.set_index("adapter_id")[["base_adapter_id", "arm", "seed"]]
    unknown = sorted(set(refined["adapter_id"]) - set(lookup.index))
    if unknown:
        raise ValueError(f"refined rows of adapters missing from the injection zoo: {unknown}")
    refined = refined.assign(
        arm=refined["adapter_id"].map(lookup["arm"]),
        seed=refined["adapter_id"].map(lookup["seed"]).astype(int),
        adapter_id=refined["adapter_id"].map(lookup["base_adapter_id"]),
    )
    bases = set(lookup["base_adapter_id"])
    baseline = baseline[baseline["adapter_id"].isin(bases)].assign(arm=BASELINE, seed=BASELINE_SEED)
    missing = sorted(bases - set(baseline["adapter_id"]))
    if missing:
        raise ValueError(f"no baseline rows for the refined adapters {missing}")
    return pd.concat([baseline, refined], ignore_index=True)


# ------------------------------------------------------------------ the two-way bootstrap
def seed_image_replicates(values: Any, resampling: Resampling) -> np.ndarray:
    """[n_boot, k] bootstrap replicates of the means of `values`, a [k, seeds, images] array
    (k series, e.g. arms, each trained with the same seed indices and scored on the same images).

    ``resampling`` gives the replicate count and the seed. Each replicate draws the images with
    replacement (`default_rng(seed)`, one multiplicity per image, the draws of
    `bootstrap_ci(np.mean, x, seed=seed)` on per-image rows) and the seed indices with replacement
    (a second generator), both shared by the k series, so a difference of two series' replicates is
    paired in images and seeds. The bootstrap of n seeds underestimates their variance by
    (n - 1) / n; the seed deviations (each value minus its image's mean over seeds) are widened by
    sqrt(n / (n - 1)) first, so the seed part is unbiased. With identical seeds (no seed spread)
    this is the image bootstrap exactly.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 3 or 0 in v.shape:
        raise ValueError(f"values must be a non-empty [series, seeds, images] array, got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite (drop the images with missing values first)")
    n_boot, seed = resampling.n_boot, resampling.seed
    n_seeds, n_images = v.shape[1], v.shape[2]
    if n_seeds > 1:
        centre = v.mean(axis=1, keepdims=True)
        v = centre + np.sqrt(n_seeds / (n_seeds - 1)) * (v - centre)
    image_rng = np.random.default_rng(seed)
    seed_rng = np.random.default_rng([int(seed), 1])
    images = np.stack(
        [np.bincount(image_rng.integers(0, n_images, n_images), minlength=n_images)
         for _ in range(n_boot)]
    ).astype(float)  # fmt: skip
    seeds = np.stack(
        [np.bincount(seed_rng.integers(0, n_seeds, n_seeds), minlength=n_seeds)
         for _ in range(n_boot)]
    ).astype(float)  # fmt: skip
    per_seed = np.einsum("ksi,bi->bks", v, images) / n_images  # [n_boot, k, seeds]
    return np.einsum("bks,bs->bk", per_seed, seeds) / n_seeds


def _interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.percentile(replicates, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    """better / worse only when the interval of the difference excludes 0, else not separated."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no data"
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return NOT_SEPARATED


# ------------------------------------------------------------------ per-image cubes
@dataclass(frozen=True)
class Cube:
    """Per-image values of every (adapter, arm) and seed on the common images: `values[k, s, i]`
    for `series[k]` = (adapter, arm); the baseline's one run is repeated over the seeds (no
    seed spread). `n_dropped` images had a missing value under some arm and are left out."""

    series: tuple[tuple[str, str], ...]
    seeds: tuple[int, ...]
    values: np.ndarray
    n_dropped: int = 0

    def rows(self, adapters: list[str], arm: str) -> list[int]:
        return [k for k, s in enumerate(self.series) if s[1] == arm and s[0] in adapters]


def _check_design(frame: pd.DataFrame, keys: list[str], what: str) -> tuple[int, ...]:
    """Every adapter has the baseline and every refined arm under the same seeds, and every
    (adapter, arm, seed) is scored on the same keys; returns the seeds."""
    if frame.duplicated([*keys, *_ROW]).any():
        raise ValueError(f"{what}: more than one row per {keys}, adapter, arm and seed")
    absent = sorted(set(ARM_ORDER) - set(frame["arm"]))
    if absent:
        raise ValueError(f"{what}: no rows for arms {absent}")
    refined = frame[frame["arm"] != BASELINE]
    seed_sets = refined.groupby(["adapter_id", "arm"])["seed"].apply(
        lambda s: tuple(sorted(set(s)))
    )
    if (
        seed_sets.nunique() != 1
        or len(seed_sets) != len(REPLICATED_ARMS) * frame["adapter_id"].nunique()
    ):
        raise ValueError(
            f"{what}: every adapter needs every refined arm under the same seeds, got "
            f"{seed_sets.to_dict()}"
        )
    combos = len(frame[_ROW].drop_duplicates())
    per_key = frame.groupby(keys).size()
    if (per_key != combos).any():
        raise ValueError(
            f"{what}: {int((per_key != combos).sum())} of {len(per_key)} rows are not scored "
            "under every adapter, arm and seed; every arm must see the same test images"
        )
    return seed_sets.iloc[0]


def build_cube(frame: pd.DataFrame, keys: list[str], column: str) -> Cube:
    """The per-image cube of `column` (rows of one image under several `keys`, e.g. corruption
    conditions, are averaged into one value per image first)."""
    seeds = _check_design(frame, keys, column)
    per_image = frame.groupby(["image_id", *_ROW])[column].mean().unstack(_ROW)
    kept = per_image.dropna(axis=0, how="any")
    series = tuple((a, arm) for a in sorted(set(frame["adapter_id"])) for arm in ARM_ORDER)
    blocks = []
    for adapter, arm in series:
        if arm == BASELINE:
            one = kept[(adapter, arm, BASELINE_SEED)].to_numpy(dtype=float)
            blocks.append(np.tile(one, (len(seeds), 1)))
        else:
            blocks.append(np.stack([kept[(adapter, arm, s)].to_numpy(dtype=float) for s in seeds]))
    return Cube(series, tuple(seeds), np.stack(blocks), len(per_image) - len(kept))


# ------------------------------------------------------------------ table rows
def _scope_values(
    cube: Cube, reps: np.ndarray, members: list[str], arm: str
) -> tuple[float, np.ndarray, np.ndarray]:
    """(value, per-seed values, replicates) of an arm averaged over the scope's adapters."""
    rows = cube.rows(members, arm)
    per_seed = cube.values[rows].mean(axis=2).mean(axis=0)
    return float(per_seed.mean()), per_seed, reps[:, rows].mean(axis=1)


def _row(
    base: dict[str, Any],
    kind: str,
    name: str,
    estimate: tuple[float, np.ndarray, np.ndarray],
    alpha: float,
) -> dict[str, Any]:
    value, per_seed, reps = estimate
    low, high = _interval(reps, alpha)
    n_seeds = len(per_seed)
    return {
        **base,
        "kind": kind,
        "comparison": name,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "seed_sd": float(np.std(per_seed, ddof=1)) if n_seeds > 1 else float("nan"),
        "seed_values": [float(x) for x in per_seed],
        "n_seeds": n_seeds,
    }


def scope_rows(
    cube: Cube,
    reps: np.ndarray,
    scope: str,
    members: list[str],
    key: dict[str, Any],
    settings: MeasureSettings,
) -> list[dict[str, Any]]:
    """The arm rows and contrast rows of one scope (an adapter, or `all` of them)."""
    base = {"adapter_id": scope, **key, "n_images": int(cube.values.shape[2])}
    alpha = float(settings.ci_alpha)
    arms = {arm: _scope_values(cube, reps, members, arm) for arm in ARM_ORDER}
    out = []
    for arm in ARM_ORDER:
        row = _row(base, "arm", arm, arms[arm], alpha)
        if arm == BASELINE:  # one run: no seed spread to show
            row.update(seed_sd=float("nan"), seed_values=row["seed_values"][:1], n_seeds=1)
        out.append(row)
    for minuend, subtrahend in CONTRASTS:
        a, b = arms[minuend], arms[subtrahend]
        diff = (a[0] - b[0], a[1] - b[1], a[2] - b[2])
        row = _row(base, "contrast", contrast_name(minuend, subtrahend), diff, alpha)
        row["detectable"] = detectable_effect(row["ci_low"], row["ci_high"])
        row["verdict"] = verdict(row["ci_low"], row["ci_high"], bool(key["higher_is_better"]))
        out.append(row)
    return out


def _cube_rows(cube: Cube, key: dict[str, Any], settings: MeasureSettings) -> list[dict[str, Any]]:
    """Rows of every adapter and of the pooled scope from one set of replicates."""
    reps = seed_image_replicates(cube.values, settings.resampling(int(settings.seed)))
    adapters = sorted({a for a, _ in cube.series})
    scopes = [(a, [a]) for a in adapters] + ([(POOLED, adapters)] if len(adapters) > 1 else [])
    return [
        r
        for scope, members in scopes
        for r in scope_rows(cube, reps, scope, members, key, settings)
    ]


def knowledge_injection_table(
    clean: pd.DataFrame, ood: pd.DataFrame, settings: MeasureSettings
) -> pd.DataFrame:
    """The Gold table from per-image rows of every arm and seed (see the module doc).

    clean: image_id, adapter_id (base), arm, seed and the :data:`CLEAN_METRICS` source columns.
    ood: image_id, adapter_id (base), arm, seed, corruption, severity, is_correct.
    """
    records: list[dict[str, Any]] = []
    for metric, (column, higher) in CLEAN_METRICS.items():
        cube = build_cube(
            clean.assign(**{column: clean[column].astype(float)}), ["image_id"], column
        )
        key = {"metric": metric, "corruption": None, "higher_is_better": higher}
        records += _cube_rows(cube, key, settings)
    ood = ood.assign(is_correct=ood["is_correct"].astype(float))
    keys = ["image_id", "corruption", "severity"]
    parts = [(ALL_CONDITIONS, ood), *ood.groupby("corruption", sort=True)]
    for corruption, part in parts:
        key = {"metric": OOD_METRIC, "corruption": str(corruption), "higher_is_better": True}
        records += _cube_rows(build_cube(part, keys, "is_correct"), key, settings)
    table = pd.DataFrame(records).reindex(columns=TABLE_COLUMNS)
    order = {
        name: i for i, name in enumerate([*ARM_ORDER, *(contrast_name(*c) for c in CONTRASTS)])
    }
    return table.sort_values(
        ["adapter_id", "metric", "corruption", "comparison"],
        key=lambda s: s.map(order) if s.name == "comparison" else s,
        na_position="first",
        ignore_index=True,
    )
