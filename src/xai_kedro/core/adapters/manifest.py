"""The zoo manifest: one row per trained adapter config, its validation metrics and its path.

Written for the zoo (`adapter_training`) and for knowledge injection's refined adapters, from
what the training fan-out (`spark.training_jobs.train_cached`) returns per adapter id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from xai_kedro.core.adapters.config import AdapterConfig

MANIFEST_COLUMNS = [
    "adapter_id", "rank", "alpha", "use_dora", "use_rslora", "target_roles", "config_hash",
    "trainable_params", "trainable_pct", "train_loss", "eval_loss", "accuracy", "f1",
    "precision", "recall", "duration_s", "path",
]  # fmt: skip
# Validation metrics copied into the manifest as floats.
FLOAT_METRICS = (
    "trainable_pct", "train_loss", "eval_loss", "accuracy", "f1", "precision", "recall",
    "duration_s",
)  # fmt: skip


def manifest_tables(
    configs: Iterable[AdapterConfig], done: Mapping[str, Mapping[str, Any]], zoo_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The zoo manifest (one row per config, in config order) and the per-epoch curves."""
    records, curves = [], []
    for cfg in configs:
        meta = done[cfg.adapter_id]
        metrics = meta["metrics"]
        records.append(
            {
                "adapter_id": cfg.adapter_id,
                "rank": int(cfg.rank),
                "alpha": float(cfg.alpha),
                "use_dora": bool(cfg.use_dora),
                "use_rslora": bool(cfg.use_rslora),
                "target_roles": ",".join(cfg.target_roles),
                "config_hash": meta["config_hash"],
                "trainable_params": int(metrics["trainable_params"]),
                **{k: float(metrics[k]) for k in FLOAT_METRICS},
                "path": str(zoo_dir / cfg.adapter_id),
            }
        )
        for epoch in meta.get("history", []):
            curves.append({"adapter_id": cfg.adapter_id, **epoch})
    return pd.DataFrame(records, columns=MANIFEST_COLUMNS), pd.DataFrame(curves)
