"""How far each adapter is from the most robust one, with an interval over test images.

The adapter ranking orders named adapters by OOD accuracy; a reader asks whether another test
set would put the same adapter first. So the interval resamples test images (each image with
all its corruptions, the same draw for every adapter: a paired comparison), and the report
names a "most robust" adapter only when every other adapter's gap to it has an interval above
zero; otherwise it says which adapters it is not separated from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters.settings import EstimationSettings
from xai_kedro.core.meta.prediction.features import require_columns
from xai_kedro.core.meta.stats.bootstrap import BootstrapOptions, TwoWay

GAP_COLUMNS = ("gap_to_best_points", "gap_to_best_ci_low", "gap_to_best_ci_high")


def correctness_matrix(silver_ood: pd.DataFrame, adapters: Sequence[str]) -> np.ndarray:
    """[adapters, images]: each adapter's mean correctness on each test image over every
    (corruption, severity) (a row's mean is its OOD accuracy when every image has every
    condition). Images some adapter lacks are dropped, so the comparison stays paired."""
    require_columns(silver_ood, ["adapter_id", "image_id", "is_correct"], "silver_ood")
    rows = silver_ood[silver_ood["adapter_id"].isin(list(adapters))]
    per = rows.groupby(["adapter_id", "image_id"], sort=True)["is_correct"].mean().astype(float)
    matrix = per.unstack("image_id").reindex(list(adapters))
    return matrix.dropna(axis=1).to_numpy(dtype=float)


def ranking_intervals(
    ranking: pd.DataFrame,
    silver_ood: pd.DataFrame,
    settings: BootstrapOptions | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """``ranking`` (rank 1 first) plus each adapter's gap to the first, best minus it in OOD
    accuracy points, with a bootstrap interval over test images (see module doc; replicates and
    level from ``settings``). The first row's gap is 0 with no interval."""
    require_columns(ranking, ["adapter_id", "ood_accuracy"], "adapter_ranking")
    out = ranking.copy()
    adapters = list(out["adapter_id"])
    values = correctness_matrix(silver_ood, adapters)
    out[list(GAP_COLUMNS)] = np.nan
    if len(adapters) < 2 or values.shape[1] == 0:
        return out
    best = int(np.argmax(out["ood_accuracy"].to_numpy(dtype=float)))

    def gaps(means: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return (means[best] - means) * 100.0

    boot = (settings or EstimationSettings()).resampling(seed)
    low, high = TwoWay(values, units=False).interval(gaps, boot)
    point = (out["ood_accuracy"].iloc[best] - out["ood_accuracy"]).to_numpy(dtype=float) * 100.0
    out["gap_to_best_points"] = point
    out["gap_to_best_ci_low"], out["gap_to_best_ci_high"] = low, high
    out.loc[out.index[best], ["gap_to_best_ci_low", "gap_to_best_ci_high"]] = np.nan
    return out


def not_separated_from_best(ranking: pd.DataFrame) -> list[str]:
    """The adapters (other than the first) whose gap interval to the best includes 0; all of
    them when the table has no intervals."""
    rest = ranking.iloc[1:]
    if "gap_to_best_ci_low" not in ranking.columns:
        return list(rest["adapter_id"])
    low = pd.to_numeric(rest["gap_to_best_ci_low"], errors="coerce")
    return list(rest.loc[~(low > 0), "adapter_id"])
