"""The monitor's evaluation from a finished run's tables: the Gold table `monitor_evaluation` and
its summaries, and the per-batch regressor the monitor run applies.

One function for the deploy pipeline's node and `benchmarks/monitor_eval.py`: profile the test
images under every condition, fit the per-batch regressor on the validation images under the
source-side shifts, draw the batches, run the monitor's code on each (`core.monitor.evaluation`)
and summarise. The callers read the tables (Spark or Parquet) into `EvaluationData`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.meta.tables import MONITOR_TABLES
from xai_kedro.core.monitor.batch_regressor import (
    BATCH_REGRESSOR,
    BatchRegressor,
    fit_batch_regressor,
)
from xai_kedro.core.monitor.conditions import (
    evaluation_conditions,
    profile_pools,
    reference_sample,
    source_conditions,
    split_rows,
)
from xai_kedro.core.monitor.estimates import source_sets
from xai_kedro.core.monitor.evaluation import (
    AUROC_COLUMNS,
    DRIFT_COLUMNS,
    ESTIMATOR_ERROR_COLUMNS,
    EVALUATION_COLUMNS,
    BatchPlan,
    EvalInputs,
    EvalSettings,
    auroc_summary,
    drift_summary,
    estimator_summary,
    evaluate_batches,
    evaluation_table,
    plan_batches,
)
from xai_kedro.core.monitor.settings import MonitorEvaluationSettings
from xai_kedro.core.robustness.shifts import ShiftSpec, load_world

logger = logging.getLogger(__name__)

# The Gold tables of the evaluation, in the deploy pipeline's output order, and their columns.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = dict(
    zip(
        MONITOR_TABLES,
        (EVALUATION_COLUMNS, ESTIMATOR_ERROR_COLUMNS, DRIFT_COLUMNS, AUROC_COLUMNS),
        strict=True,
    )
)


@dataclass(frozen=True)
class EvaluationData:
    """A finished run's inputs: Bronze test and val rows (pixels, labels, masks), the drift
    reference (non-test Bronze embeddings), the deployed adapter's `silver_source` rows, the
    synthetic world (background shifts; None elsewhere)."""

    test_rows: pd.DataFrame
    val_rows: pd.DataFrame
    reference: np.ndarray
    silver_source: pd.DataFrame
    world: Any = None


def evaluation_data(
    bronze: pd.DataFrame,
    embeddings: pd.DataFrame,
    silver_source: pd.DataFrame,
    ood: Mapping[str, Any],
    settings: MonitorEvaluationSettings,
) -> EvaluationData:
    """The inputs from the run's tables as pandas: ``bronze`` holds every image's id and split
    and, for the test and val rows, pixels, label and mask; the world is read from
    `ood.world` when a background shift needs it."""
    shifts = [
        s for _, s in evaluation_conditions(ood, settings.families) if isinstance(s, ShiftSpec)
    ]
    return EvaluationData(
        test_rows=split_rows(bronze, "test", settings.max_images),
        val_rows=split_rows(bronze, "val"),
        reference=reference_sample(embeddings, bronze, settings.reference_size, settings.seed),
        silver_source=silver_source,
        world=load_world(ood.get("world"), shifts),
    )


@dataclass(frozen=True)
class EvaluationResult:
    """Per-batch and per-(batch, method) rows, the plans, the regressor and the timings."""

    batches: pd.DataFrame
    methods: pd.DataFrame
    plans: list[BatchPlan]
    regressor: BatchRegressor
    sizes_skipped: list[int] = field(default_factory=list)
    seconds: Mapping[str, float] = field(default_factory=dict)

    def tables(self, adapter_id: str) -> dict[str, pd.DataFrame]:
        """The Gold tables, in `MONITOR_TABLES` order."""
        tables = (
            evaluation_table(self.batches, self.methods, adapter_id),
            estimator_summary(self.methods),
            drift_summary(self.batches),
            auroc_summary(self.batches),
        )
        return dict(zip(MONITOR_TABLES, tables, strict=True))


def empty_tables() -> dict[str, pd.DataFrame]:
    """The Gold tables of a run that does not evaluate (declared columns, no rows)."""
    return {name: pd.DataFrame(columns=list(cols)) for name, cols in TABLE_COLUMNS.items()}


def run_evaluation(
    deployed: Any,
    data: EvaluationData,
    ood: Mapping[str, Any],
    settings: MonitorEvaluationSettings,
    estimators: Sequence[str],
) -> EvaluationResult:
    """The monitor on every planned batch of the test images (see the module docstring)."""
    start, base_seed = time.perf_counter(), int(ood.get("base_seed", 0))
    conds = evaluation_conditions(ood, settings.families)
    pools = profile_pools(deployed, data.test_rows, conds, base_seed, data.world)
    val_pools = profile_pools(
        deployed, data.val_rows, source_conditions(ood), base_seed, None, embed=False
    )
    regressor = fit_batch_regressor(
        val_pools,
        data.val_rows["label"].to_numpy(dtype=np.int64),
        settings.regressor_batch_size,
        settings.regressor_batches,
        settings.seed,
    )
    profiled = time.perf_counter() - start
    source, calibration = source_sets(data.silver_source, deployed.bundle.adapter_id)
    n_test = len(data.test_rows)
    sizes = [s for s in settings.sizes if s < settings.large or s <= n_test]
    plans = plan_batches([c for c, _ in conds], n_test, sizes, settings.batches, settings.seed)
    eval_settings = EvalSettings(
        tuple(estimators), settings.n_permutations, settings.alpha, settings.seed
    )
    labels = data.test_rows["label"].to_numpy(dtype=np.int64)
    inputs = EvalInputs(
        pools, labels, source, calibration, data.reference, eval_settings, regressor
    )
    batches, methods = evaluate_batches(plans, inputs)
    own = methods.loc[methods["method"] == BATCH_REGRESSOR, "error_points"]
    seconds = {"profiling": profiled, "total": time.perf_counter() - start}
    logger.info(
        "monitor evaluation: %d batches in %.0f s (%.0f s profiling)",
        len(plans), seconds["total"], profiled,
    )  # fmt: skip
    return EvaluationResult(
        batches,
        methods,
        plans,
        regressor.measured(own.to_numpy()),
        sorted(set(settings.sizes) - set(sizes)),
        seconds,
    )
