"""The monitor measured against its anchors (issue 30): clean, shifted and mixed batches of the
held-out test images, at several batch sizes, through the monitor's own code.

Runs after a `kedro run` on base, without Spark: pandas/pyarrow read the run's Parquet tables
(Bronze test split and embeddings, `silver_source`, `accuracy_estimation_summary`) and core/deploy
loads the deployed bundle (`<data-root>/06_models/deployed`, else `deployed_model.json`'s
`bundle_dir`). Every condition of the run's `ood` parameters (the reference grid and each
`ood.shifts` cell) is applied to the test images at their stored size, each image is profiled
once per condition by the deployed model (`core.monitor.profile`), then seeded batches are drawn
(`core.monitor.evaluation`). Batches larger than the test split are drawn with replacement (the
table says so); the drift test sees a batch's distinct images only, and its reference is a seeded
sample of non-test Bronze embeddings, so no batch image is in its own reference.

    python -m benchmarks.monitor_eval [--data-root data] [--sizes 50 200 1000] [--batches 5]
        [--permutations 200] [--reference-size 500] [--max-images 0] [--out per_batch.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks._common import ROOT, commit, print_table
from xai_kedro.core.meta.adapters.estimators import ESTIMATORS
from xai_kedro.core.monitor.estimates import measured_errors
from xai_kedro.core.monitor.evaluation import (
    CLEAN,
    auroc_summary,
    drift_summary,
    estimator_summary,
)
from xai_kedro.core.monitor.gold import evaluation_data, run_evaluation
from xai_kedro.core.monitor.settings import MonitorEvaluationSettings

LARGE = 1000  # a batch size run only when the test split holds that many images
BUNDLE = Path("06_models/deployed")
TABLES = {
    "bronze_images": "02_bronze/bronze_images.parquet",
    "bronze_embeddings": "02_bronze/bronze_embeddings.parquet",
    "silver_source": "03_silver/silver_source.parquet",
    "summary": "04_gold/accuracy_estimation_summary.parquet",
    "world": "01_raw/synthetic/manifest.json",
}


# ------------------------------------------------------------------ reading the run
def ood_params(conf: Path) -> dict:
    """The run's `ood` block (conf/<env>/parameters_ood.yml; the data root is the flag's)."""
    return yaml.safe_load((conf / "parameters_ood.yml").read_text())["ood"]


def load_deployed(root: Path, device: str):
    """The deployed model from its bundle (core/deploy's reader; no MLflow needed)."""
    from xai_kedro.core.deploy.scoring import DeployedModel

    directory = root / BUNDLE
    if not (directory / "bundle.json").is_file():
        record = json.loads((root / "06_models/deployed_model.json").read_text())
        directory = Path(record["bundle_dir"])
    return DeployedModel.load(directory, device)


# ------------------------------------------------------------------ the figures
def _per_size(frame: pd.DataFrame, fmt) -> str:
    return "; ".join(f"n={r.size}: {fmt(r)}" for r in frame.sort_values("size").itertuples())


def _error_text(r) -> str:
    text = f"MAE {r.mae_points:.1f}, worst {r.max_abs_error_points:.1f}"
    if r.raw_max_abs_error_points > r.max_abs_error_points + 1e-9:  # clipped somewhere
        text += f" (raw MAE {r.raw_mae_points:.1f}, worst {r.raw_max_abs_error_points:.1f})"
    return text


def estimator_rows(summary: pd.DataFrame, measured: pd.DataFrame) -> list[tuple[str, str]]:
    """One line per (method, group): MAE / worst |estimated - true| in points per batch size
    (of the raw estimate too where clipping to [0, 1] changed it), with the method's error
    measured on the run's shifts (`accuracy_estimation_summary`)."""
    rows = []
    for (method, group), part in summary.groupby(["method", "group"], sort=True):
        text = _per_size(part, _error_text)
        if method in measured.index:
            text += f" (Gold MAE {measured.loc[method, 'measured_mae_points']:.1f})"
        rows.append((f"error pts: {method} on {group}", text))
    return rows


def drift_rows(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """False-alarm rate on clean batches, then the detection rate per shift (shifted; mixed)."""
    clean = summary[summary["kind"] == CLEAN]
    rows = [("MMD false alarm: clean", _per_size(clean, lambda r: f"{r.flagged_rate:.2f}"))]
    shifted = summary[summary["kind"] != CLEAN]
    for (family, shift, severity), part in shifted.groupby(["family", "shift", "severity"]):
        pivot = part.pivot_table(index="size", columns="kind", values="flagged_rate")
        text = "; ".join(
            f"n={size}: {r.get('shifted', np.nan):.2f} (mixed {r.get('mixture', np.nan):.2f})"
            for size, r in pivot.iterrows()
        )
        rows.append((f"MMD detection: {family}/{shift}/{severity}", text))
    return rows


def auroc_rows(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """Mean per-batch AUROC of failure risk (and 1 - confidence) per group and size."""
    return [
        (
            f"failure-risk AUROC: {group}",
            _per_size(part, lambda r: f"{r.risk_auroc:.3f} (1-conf {r.confidence_auroc:.3f})"),
        )
        for group, part in summary.groupby("group", sort=True)
    ]


def figure_rows(
    batches: pd.DataFrame, methods: pd.DataFrame, measured: pd.DataFrame
) -> list[tuple[str, str]]:
    """The benchmark's figures, as (measure, value) lines of `print_table`."""
    return [
        *estimator_rows(estimator_summary(methods), measured),
        *drift_rows(drift_summary(batches)),
        *auroc_rows(auroc_summary(batches)),
    ]


# ------------------------------------------------------------------ main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=ROOT / "data")
    p.add_argument("--conf", type=Path, default=ROOT / "conf/base", help="its parameters_ood.yml")
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 200, LARGE])
    p.add_argument("--batches", type=int, default=5, help="seeded batches per cell")
    p.add_argument("--permutations", type=int, default=200, help="MMD permutations per test")
    p.add_argument("--reference-size", type=int, default=500, help="Bronze embeddings (drift)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--max-images", type=int, default=0, help="cap the test split (0: all)")
    p.add_argument("--families", nargs="*", default=[], help="shift families (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="write per-batch rows (CSV) here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    root = args.data_root.resolve()
    ood, deployed = ood_params(args.conf), load_deployed(root, args.device)
    settings = MonitorEvaluationSettings(
        enabled=True, sizes=tuple(args.sizes), large=LARGE, batches=args.batches,
        families=tuple(args.families), max_images=args.max_images,
        n_permutations=args.permutations, alpha=args.alpha, reference_size=args.reference_size,
        seed=args.seed,
    )  # fmt: skip
    bronze = pd.read_parquet(root / TABLES["bronze_images"])
    embeddings = pd.read_parquet(
        root / TABLES["bronze_embeddings"], columns=["image_id", "embedding"]
    )
    silver = pd.read_parquet(root / TABLES["silver_source"])
    world = {**ood, "world": str(root / TABLES["world"])}  # the flag's data root, not conf's
    data = evaluation_data(bronze, embeddings, silver, world, settings)
    result = run_evaluation(deployed, data, world, settings, ESTIMATORS.names())
    batches, methods, plans = result.batches, result.methods, result.plans
    if args.out:
        batches.to_csv(args.out, index=False)
        methods.to_csv(args.out.with_name(args.out.stem + "_methods.csv"), index=False)
    measured = measured_errors(pd.read_parquet(root / TABLES["summary"]))
    replaced = sorted({p.size for p in plans if p.with_replacement})
    sizes = sorted({p.size for p in plans})
    seconds = result.seconds
    print_table(
        "monitor_eval (the monitor against its anchors, held-out test batches)",
        [
            ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"),
            ("commit", commit()),
            (
                "data",
                f"{root}: {len(data.test_rows)} test images, adapter {deployed.bundle.adapter_id}",
            ),  # fmt: skip
            ("batches", f"{len(plans)} ({args.batches} per cell; sizes {sizes})"),
            (
                "sizes skipped (test split too small)",
                str(result.sizes_skipped) if result.sizes_skipped else "none",
            ),  # fmt: skip
            ("drawn with replacement", f"sizes {replaced}" if replaced else "none"),
            (
                "MMD",
                f"{args.permutations} permutations, alpha {args.alpha}, "
                f"{len(data.reference)} non-test Bronze embeddings",
            ),  # fmt: skip
            (
                "per-batch regressor",
                f"{result.regressor.status}; {result.regressor.n_batches} source-side batches "
                f"of {len(data.val_rows)} val images",
            ),  # fmt: skip
            (
                "wall time (s)",
                f"profiling {seconds['profiling']:.0f}, total {seconds['total']:.0f}",
            ),  # fmt: skip
            *figure_rows(batches, methods, measured),
        ],
    )


if __name__ == "__main__":
    main()
