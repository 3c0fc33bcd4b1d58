"""Gold `knowledge_injection`: baseline vs targeted vs control on the same test images.

Every arm of an adapter is scored on the very same test images (and corrupted pixels: the OOD
seeds depend on the image and the condition only), so each comparison is *paired*: per image
the difference of two arms, averaged; its interval is a percentile bootstrap that resamples
whole images (an image contributes one row per corruption condition, and under the pooled row
`all` one per adapter, so rows of one image are not independent).

Table (one row per adapter_id, arm, metric, corruption):
value (mean over images), n_images, higher_is_better, and for targeted/control rows
`diff_vs_baseline` [low, high], for targeted rows `diff_vs_control` [low, high] and `verdict`
(better / worse / no effect: whether the interval of targeted - control excludes 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.meta.stats.bootstrap import bootstrap_ci

ARM_ORDER = ("baseline", "targeted", "control")
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
    "adapter_id", "arm", "metric", "corruption", "value", "n_images", "higher_is_better",
    "diff_vs_baseline", "diff_vs_baseline_low", "diff_vs_baseline_high", "diff_vs_control",
    "diff_vs_control_low", "diff_vs_control_high", "verdict",
]  # fmt: skip


@dataclass(frozen=True)
class MeasureSettings(Settings):
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
    *base* adapter id and an `arm` column."""
    lookup = injection_zoo.set_index("adapter_id")[["base_adapter_id", "arm"]]
    unknown = sorted(set(refined["adapter_id"]) - set(lookup.index))
    if unknown:
        raise ValueError(f"refined rows of adapters missing from the injection zoo: {unknown}")
    refined = refined.assign(
        arm=refined["adapter_id"].map(lookup["arm"]),
        adapter_id=refined["adapter_id"].map(lookup["base_adapter_id"]),
    )
    bases = set(lookup["base_adapter_id"])
    baseline = baseline[baseline["adapter_id"].isin(bases)].assign(arm="baseline")
    missing = sorted(bases - set(baseline["adapter_id"]))
    if missing:
        raise ValueError(f"no baseline rows for the refined adapters {missing}")
    return pd.concat([baseline, refined], ignore_index=True)


def _paired(frame: pd.DataFrame, keys: list[str], column: str) -> pd.DataFrame:
    """Arms side by side on the same keys; a key missing from an arm, or repeated, is an error."""
    if frame.duplicated([*keys, "arm"]).any():
        raise ValueError(f"{column}: more than one row per {keys} and arm")
    absent = sorted(set(ARM_ORDER) - set(frame["arm"]))
    if absent:
        raise ValueError(f"{column}: no rows for arms {absent}")
    arms_per_key = frame.groupby(keys)["arm"].nunique()
    if (arms_per_key != len(ARM_ORDER)).any():
        raise ValueError(
            f"{column}: {int((arms_per_key != len(ARM_ORDER)).sum())} of {len(arms_per_key)} "
            "rows are not scored under every arm; every arm must see the same test images"
        )
    wide = frame.set_index([*keys, "arm"])[column].unstack("arm")
    return wide.reindex(columns=list(ARM_ORDER)).reset_index()


def _mean_ci(
    diff: np.ndarray, groups: np.ndarray, settings: MeasureSettings
) -> tuple[float, float, float]:
    keep = np.isfinite(diff)
    if not keep.any():
        return float("nan"), float("nan"), float("nan")
    low, high = bootstrap_ci(
        np.mean,
        diff[keep],
        n_boot=int(settings.n_bootstrap),
        alpha=float(settings.ci_alpha),
        seed=int(settings.seed),
        groups=groups[keep],
    )
    return float(diff[keep].mean()), low, high


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    """better / worse when the interval of the difference excludes 0, else no effect."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no data"
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "no effect"


def _rows_for(
    wide: pd.DataFrame,
    adapter_id: str,
    metric: str,
    corruption: str | None,
    higher_is_better: bool,
    settings: MeasureSettings,
) -> list[dict[str, Any]]:
    groups = wide["image_id"].to_numpy()
    n_images = int(wide["image_id"].nunique())
    base = wide["baseline"].to_numpy(dtype=float)
    out = []
    for arm in ARM_ORDER:
        values = wide[arm].to_numpy(dtype=float)
        row: dict[str, Any] = {
            "adapter_id": adapter_id,
            "arm": arm,
            "metric": metric,
            "corruption": corruption,
            "value": float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"),
            "n_images": n_images,
            "higher_is_better": higher_is_better,
        }
        if arm != "baseline":
            mean, low, high = _mean_ci(values - base, groups, settings)
            row.update(diff_vs_baseline=mean, diff_vs_baseline_low=low, diff_vs_baseline_high=high)
        if arm == "targeted":
            control = wide["control"].to_numpy(dtype=float)
            mean, low, high = _mean_ci(values - control, groups, settings)
            row.update(
                diff_vs_control=mean,
                diff_vs_control_low=low,
                diff_vs_control_high=high,
                verdict=verdict(low, high, higher_is_better),
            )
        out.append(row)
    return out


def knowledge_injection_table(
    clean: pd.DataFrame, ood: pd.DataFrame, settings: MeasureSettings
) -> pd.DataFrame:
    """The Gold table from per-image rows of every arm (see the module doc).

    clean: image_id, adapter_id (base), arm, and the :data:`CLEAN_METRICS` source columns.
    ood: image_id, adapter_id (base), arm, corruption, severity, is_correct.
    """
    records: list[dict[str, Any]] = []
    adapters = sorted(set(clean["adapter_id"]))
    scopes = [(a, [a]) for a in adapters] + ([(POOLED, adapters)] if len(adapters) > 1 else [])
    for scope, members in scopes:
        own_clean = clean[clean["adapter_id"].isin(members)]
        for metric, (column, higher) in CLEAN_METRICS.items():
            values = own_clean.assign(**{column: own_clean[column].astype(float)})
            wide = _paired(values, ["adapter_id", "image_id"], column)
            records += _rows_for(wide, scope, metric, None, higher, settings)
        own_ood = ood[ood["adapter_id"].isin(members)].assign(
            is_correct=lambda f: f["is_correct"].astype(float)
        )
        keys = ["adapter_id", "image_id", "corruption", "severity"]
        wide = _paired(own_ood, keys, "is_correct")
        records += _rows_for(wide, scope, OOD_METRIC, ALL_CONDITIONS, True, settings)
        for corruption, part in wide.groupby("corruption", sort=True):
            records += _rows_for(part, scope, OOD_METRIC, str(corruption), True, settings)
    table = pd.DataFrame(records).reindex(columns=TABLE_COLUMNS)
    return table.sort_values(
        ["adapter_id", "metric", "corruption", "arm"],
        key=lambda s: s.map({a: i for i, a in enumerate(ARM_ORDER)}) if s.name == "arm" else s,
        na_position="first",
        ignore_index=True,
    )
