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
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from benchmarks._common import ROOT, commit, print_table
from xai_kedro.core.data.bronze import masks_from_rows, pixels_from_rows
from xai_kedro.core.meta.adapters.estimators import ESTIMATORS
from xai_kedro.core.monitor.estimates import measured_errors, source_sets
from xai_kedro.core.monitor.evaluation import (
    CLEAN,
    CLEAN_CONDITION,
    Condition,
    ConditionPool,
    EvalSettings,
    auroc_summary,
    drift_summary,
    estimator_summary,
    evaluate_batches,
    plan_batches,
)
from xai_kedro.core.robustness.presets import apply_spec, build_specs, spec_seeds
from xai_kedro.core.robustness.shifts import (
    ShiftSpec,
    build_shift_specs,
    load_world,
    shift_images,
)

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


def test_split(root: Path, max_images: int) -> pd.DataFrame:
    """Bronze's held-out test rows (never train/val), sorted by image id; at most max_images."""
    rows = pd.read_parquet(root / TABLES["bronze_images"], filters=[("split", "==", "test")])
    rows = rows.sort_values("image_id", ignore_index=True)
    return rows.head(max_images) if max_images > 0 else rows


def reference_embeddings(root: Path, size: int, seed: int) -> np.ndarray:
    """A seeded sample of the Bronze embeddings of non-test images (the drift reference)."""
    emb = pd.read_parquet(root / TABLES["bronze_embeddings"], columns=["image_id", "embedding"])
    splits = pd.read_parquet(root / TABLES["bronze_images"], columns=["image_id", "split"])
    emb = emb.merge(splits, on="image_id")
    emb = emb[emb["split"] != "test"].sort_values("image_id", ignore_index=True)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(emb), min(size, len(emb)), replace=False))
    return np.stack([np.asarray(v, np.float64) for v in emb["embedding"].iloc[keep]])


def load_deployed(root: Path, device: str):
    """The deployed model from its bundle (core/deploy's reader; no MLflow needed)."""
    from xai_kedro.core.deploy.scoring import DeployedModel

    directory = root / BUNDLE
    if not (directory / "bundle.json").is_file():
        record = json.loads((root / "06_models/deployed_model.json").read_text())
        directory = Path(record["bundle_dir"])
    return DeployedModel.load(directory, device)


# ------------------------------------------------------------------ the conditions
def conditions(ood: dict, only: Sequence[str]) -> list[tuple[Condition, object]]:
    """(condition, its spec) for clean, the reference grid and every `ood.shifts` cell, keeping
    the families named in ``only`` (all when empty)."""
    out: list[tuple[Condition, object]] = [(CLEAN_CONDITION, None)]
    for spec in build_specs(ood.get("preset", "reference"), ood.get("corruptions") or []):
        out.append((Condition("reference", spec.corruption, spec.severity), spec))
    for spec in build_shift_specs(ood.get("shifts") or []):
        out.append((Condition(spec.family, spec.shift, spec.severity), spec))
    return [(c, s) for c, s in out if not only or c.family in (CLEAN, *only)]


def shifted_pixels(cond: Condition, spec, rows: pd.DataFrame, base_seed: int, world) -> np.ndarray:
    """The test images under one condition, at their stored size, as uint8 [N, H, W, 3]."""
    images = pixels_from_rows(rows)
    ids = rows["image_id"].tolist()
    if cond.family == CLEAN:
        return images
    if cond.family == "reference":  # the corruption tensor op, on the stored image
        x = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2)
        out = apply_spec(spec, x, spec_seeds(ids, spec, base_seed))
        return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = rows["label"].to_numpy(dtype=np.int64)
    return shift_images(
        spec, images, labels, masks_from_rows(rows), ids, base_seed=base_seed, world=world
    )


def profile_pools(deployed, rows: pd.DataFrame, conds, ood: dict, world, chunk: int = 64) -> dict:
    """Every condition's pool: the deployed model's profile and the Bronze-space embeddings of
    each test image under it (profiled once, in chunks of ``chunk`` images)."""
    from xai_kedro.core.monitor.profile import embed_pixels, frozen_backbone, profile_pixels

    backbone = frozen_backbone(deployed)
    pools = {}
    for cond, spec in conds:
        pixels = shifted_pixels(cond, spec, rows, int(ood.get("base_seed", 0)), world)
        parts = [pixels[i : i + chunk] for i in range(0, len(pixels), chunk)]
        profile = pd.concat([profile_pixels(deployed, p) for p in parts], ignore_index=True)
        emb = np.vstack([embed_pixels(deployed, backbone, p) for p in parts]).astype(np.float64)
        pools[cond] = ConditionPool(profile, emb)
        print(f"  profiled {cond.key}: accuracy {np.mean(profile['pred'] == rows['label']):.3f}")
    return pools


# ------------------------------------------------------------------ the figures
def _per_size(frame: pd.DataFrame, fmt) -> str:
    return "; ".join(f"n={r.size}: {fmt(r)}" for r in frame.sort_values("size").itertuples())


def estimator_rows(summary: pd.DataFrame, measured: pd.DataFrame) -> list[tuple[str, str]]:
    """One line per (method, group): MAE / worst |estimated - true| in points per batch size,
    with the method's error measured on the run's shifts (`accuracy_estimation_summary`)."""
    rows = []
    for (method, group), part in summary.groupby(["method", "group"], sort=True):
        text = _per_size(
            part, lambda r: f"MAE {r.mae_points:.1f}, worst {r.max_abs_error_points:.1f}"
        )
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
    root, start = args.data_root.resolve(), time.perf_counter()
    ood, deployed = ood_params(args.conf), load_deployed(root, args.device)
    rows = test_split(root, args.max_images)
    conds = conditions(ood, args.families)
    world = load_world(root / TABLES["world"], [s for _, s in conds if isinstance(s, ShiftSpec)])
    pools = profile_pools(deployed, rows, conds, ood, world)
    profiled = time.perf_counter() - start
    silver = pd.read_parquet(root / TABLES["silver_source"])
    source, calibration = source_sets(silver, deployed.bundle.adapter_id)
    reference = reference_embeddings(root, args.reference_size, args.seed)
    sizes = [s for s in args.sizes if s < LARGE or s <= len(rows)]
    skipped = sorted(set(args.sizes) - set(sizes))
    plans = plan_batches([c for c, _ in conds], len(rows), sizes, args.batches, args.seed)
    settings = EvalSettings(ESTIMATORS.names(), args.permutations, args.alpha, args.seed)
    labels = rows["label"].to_numpy(dtype=np.int64)
    batches, methods = evaluate_batches(
        plans, pools, labels, source, calibration, reference, settings
    )
    if args.out:
        batches.to_csv(args.out, index=False)
        methods.to_csv(args.out.with_name(args.out.stem + "_methods.csv"), index=False)
    measured = measured_errors(pd.read_parquet(root / TABLES["summary"]))
    replaced = sorted({p.size for p in plans if p.with_replacement})
    print_table(
        "monitor_eval (the monitor against its anchors, held-out test batches)",
        [
            ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"),
            ("commit", commit()),
            ("data", f"{root}: {len(rows)} test images, adapter {deployed.bundle.adapter_id}"),
            ("batches", f"{len(plans)} ({args.batches} per cell; sizes {sizes})"),
            ("sizes skipped (test split too small)", str(skipped) if skipped else "none"),
            ("drawn with replacement", f"sizes {replaced}" if replaced else "none"),
            (
                "MMD",
                f"{args.permutations} permutations, alpha {args.alpha}, "
                f"{len(reference)} non-test Bronze embeddings",
            ),  # fmt: skip
            ("wall time (s)", f"profiling {profiled:.0f}, total {time.perf_counter() - start:.0f}"),
            *figure_rows(batches, methods, measured),
        ],
    )


if __name__ == "__main__":
    main()
