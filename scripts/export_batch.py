"""Write a batch of the run's held-out test images to a folder, clean or under one shift, to try
the monitor (`kedro run --pipelines monitor --params monitor.source.root=<folder>`).

    .venv/bin/python scripts/export_batch.py data/01_raw/batch_clean
    .venv/bin/python scripts/export_batch.py data/01_raw/batch_fog --shift fog --severity 4
    .venv/bin/python scripts/export_batch.py data/01_raw/batch_bg --shift counter_biased \
        --severity whole --value 1.0

Reads Bronze (`<data-root>/02_bronze/bronze_images.parquet`, written by `kedro run`); a shift is
any name of the shift registry (`core.robustness.shifts`: the background and ImageNet-C
families), seeded per image as the OOD stage seeds it. Images keep their class folder, which the
monitor does not use (it takes no labels)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from xai_kedro.core.data.bronze import masks_from_rows, pixels_from_rows
from xai_kedro.core.robustness.shifts import (
    ShiftSpec,
    build_shift_specs,
    load_world,
    shift_images,
)

logger = logging.getLogger("export_batch")


def _spec(args: argparse.Namespace) -> ShiftSpec | None:
    if not args.shift:
        return None
    entry = {"shift": args.shift, "severities": [args.severity]}
    if args.value is not None:
        entry["values"] = [args.value]
    return build_shift_specs([entry])[0]


def export(args: argparse.Namespace) -> int:
    bronze = pd.read_parquet(args.data_root / "02_bronze/bronze_images.parquet")
    rows = bronze[bronze["split"] == args.split].sort_values("image_id", ignore_index=True)
    if args.limit:
        rows = rows.head(args.limit)
    if rows.empty:
        raise SystemExit(f"no {args.split!r} images in {args.data_root}/02_bronze")
    images = pixels_from_rows(rows)
    spec = _spec(args)
    if spec is not None:
        world = load_world(args.data_root / "01_raw/synthetic/manifest.json", [spec])
        images = shift_images(
            spec, images, rows["label"].to_numpy(), masks_from_rows(rows),
            list(rows["image_id"]), base_seed=args.seed, world=world,
        )  # fmt: skip
    for image, row in zip(np.asarray(images, dtype=np.uint8), rows.itertuples(), strict=True):
        folder = args.out / str(row.label_name)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{Path(str(row.image_id)).name}.png")
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (one sub-folder per class)")
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--shift", help="a shift registry name (none: the clean images)")
    parser.add_argument("--severity", default="3")
    parser.add_argument("--value", type=float, help="the severity's value (background shifts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = export(args)
    logger.info("Wrote %d images to %s", count, args.out)


if __name__ == "__main__":
    main()
