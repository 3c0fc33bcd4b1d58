"""The reference experiment's correlation table: each clean-image feature against correctness
under corruption, with image-clustered intervals and p-values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.prediction.features import (
    CONFIDENCE_SET,
    GROUP,
    TARGET,
    XAI_SET,
    default_feature_sets,
    require_columns,
)
from xai_kedro.core.meta.stats.association import cohens_d, feature_outcome_stats, pearson
from xai_kedro.core.meta.stats.bootstrap import Resampling, interval_columns

CORRELATION_COLUMNS = (
    "feature",
    "pearson_r",
    "spearman_r",
    "point_biserial_r",
    "cohens_d",
    "separation_ratio",
    "mean_correct",
    "mean_wrong",
    "pearson_p",
    "spearman_p",
    "point_biserial_p",
    "pearson_ci_low",
    "pearson_ci_high",
    "cohens_d_ci_low",
    "cohens_d_ci_high",
    "n",
    "pearson_r_images",
    "n_images",
    "feature_group",
)


def correlations(
    meta_df: pd.DataFrame,
    features: Mapping[str, Sequence[str]] | None = None,
    resampling: Resampling | None = None,
    group_col: str = GROUP,
) -> pd.DataFrame:
    """Association of each clean-image feature with OOD correctness (one row per OOD sample).

    ``features`` maps a group name to columns (default: XAI and confidence features). The CIs
    of Pearson r and Cohen's d come from a cluster bootstrap over ``group_col`` (images); every
    p-value is a test of the per-image means (`stats.association.clustered_p_values`), so none treats the
    rows of one image as independent.
    """
    if features is None:
        sets = default_feature_sets(meta_df)
        features = {"xai": sets[XAI_SET], "confidence": sets[CONFIDENCE_SET]}
    require_columns(meta_df, [TARGET, group_col], "meta dataset")
    y = meta_df[TARGET].to_numpy(dtype=bool)
    groups = meta_df[group_col].to_numpy()
    boot = resampling or Resampling()
    rows = []
    for group_name, cols in features.items():
        require_columns(meta_df, list(cols), "meta dataset")
        for f in cols:
            x = meta_df[f].to_numpy(dtype=float)
            row: dict[str, Any] = {"feature": f, "feature_group": group_name}
            row.update(feature_outcome_stats(x, y, name=f, groups=groups))
            ok = np.isfinite(x)
            if np.isfinite(row["pearson_r"]):
                low, high = boot.interval(
                    lambda xx, yy: [pearson(xx, yy), cohens_d(xx, yy)],
                    x[ok],
                    y[ok],
                    groups=groups[ok],
                )
                row.update(interval_columns(("pearson", "cohens_d"), low, high))
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(CORRELATION_COLUMNS))
