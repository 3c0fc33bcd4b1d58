"""One monitored batch from its profile: the estimates table and the drift test, the same code
for the pipeline (a folder scored on Spark) and the benchmark (batches the project makes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters.estimators import PredictionSet
from xai_kedro.core.monitor.batch_regressor import BatchRegressor
from xai_kedro.core.monitor.drift import DriftResult, mmd_permutation_test, subsample
from xai_kedro.core.monitor.estimates import batch_estimates
from xai_kedro.core.monitor.settings import MonitorSettings


def monitor_batch(
    profile: pd.DataFrame,
    embeddings: np.ndarray,
    source: PredictionSet,
    calibration: Sequence[PredictionSet],
    reference_embeddings: np.ndarray,
    settings: MonitorSettings,
    summary: pd.DataFrame | None = None,
    regressor: BatchRegressor | None = None,
) -> tuple[pd.DataFrame, DriftResult]:
    """(estimated accuracy per method with measured errors, MMD test against the reference).

    ``profile``: one row per batch image with pred, confidence, pred_entropy, logits, the XAI
    profile and failure_risk (`core.monitor.profile.profile_pixels`); ``embeddings`` aligned
    with it. ``regressor``: the per-batch regressor (its row says why when it is not fitted).
    """
    target = PredictionSet.from_rows(profile, labelled=False)
    estimates = batch_estimates(
        source,
        calibration,
        target,
        settings.estimators,
        summary,
        profile["failure_risk"].to_numpy(dtype=float),
        extra=[regressor.row(profile)] if regressor is not None else (),
    )
    reference = subsample(reference_embeddings, settings.reference_size, settings.seed)
    batch = subsample(embeddings, settings.batch_size_cap, settings.seed + 1)
    drift = mmd_permutation_test(
        reference, batch, settings.n_permutations, settings.alpha, seed=settings.seed
    )
    return estimates, drift
