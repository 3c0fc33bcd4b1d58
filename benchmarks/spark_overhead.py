"""What Spark adds to the XAI stage, and how its time grows with the number of images (CPU).

Runs `xai_silver`'s node (iterator Pandas UDF, broadcast adapters, merge per partition) and the
core engine called directly on the same rows, with a small model, at 1x, 2x, 4x (8x) the images.
Growth is judged by the marginal cost per image between consecutive sizes (linear time = a
fixed start-up cost plus a constant cost per image) and by a least-squares line through all
points.

    python benchmarks/spark_overhead.py [--images 512] [--factors 1 2 4 8] [--partitions 2]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._common import ROOT, commit, print_table, timed
from xai_kedro.core.adapters import (
    AdapterConfig,
    attach_adapter,
    build_inference_model,
    read_adapter_files,
    save_adapter,
)
from xai_kedro.core.models.backbone import (
    build_backbone,
    freeze,
    save_backbone,
    small_backbone_config,
)
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.spark.session import configure_spark, get_spark
from xai_kedro.spark.silver_nodes import compute_silver_xai

SIZE, NUM_CLASSES = 48, 6
ENGINE = {"steps": 8, "batch_size": 64}


def build_zoo(root: Path) -> tuple[torch.nn.Module, pd.DataFrame, dict]:
    torch.manual_seed(0)
    backbone = freeze(build_backbone(small_backbone_config(image_size=SIZE)))
    save_backbone(backbone, root / "backbone")
    rows = []
    for rank in (0, 4, 8):
        cfg = AdapterConfig.from_params({"adapter_id": f"r{rank}", "rank": rank, "alpha": "2r"})
        model = attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), cfg)
        save_adapter(model, cfg, root / cfg.adapter_id, {"config_hash": cfg.adapter_id})
        rows.append({"adapter_id": cfg.adapter_id, "path": str(root / cfg.adapter_id)})
    manifest = {"source": str(root / "backbone"), "local_files_only": True, "input_size": SIZE}
    return backbone, pd.DataFrame(rows), manifest


def bronze_frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    pixels = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    return pd.DataFrame(
        {
            "image_id": [f"img{i:06d}" for i in range(n)],
            "label": rng.integers(0, NUM_CLASSES, n).astype("int32"),
            "split": "test",
            "height": SIZE,
            "width": SIZE,
            "pixels": [p.tobytes() for p in pixels],
            "mask": None,
        }
    )


def direct(backbone, zoo: pd.DataFrame, frame: pd.DataFrame) -> int:
    images = np.stack([np.frombuffer(p, np.uint8).reshape(SIZE, SIZE, 3) for p in frame["pixels"]])
    config = XAIConfig.from_params({"input_size": SIZE, **ENGINE})
    rows = 0
    for row in zoo.itertuples():
        model = build_inference_model(backbone, read_adapter_files(row.path), NUM_CLASSES)
        rows += len(compute_xai(model, images, frame["label"].to_numpy(), None, config, "cpu"))
    return rows


def cached_bronze(spark, frame: pd.DataFrame):
    """Bronze rows already in Spark (as when read from Parquet): not part of the timing."""
    schema = (
        "image_id string, label int, split string, height int, width int, "
        "pixels binary, mask binary"
    )
    bronze = spark.createDataFrame(frame, schema=schema).cache()
    bronze.count()
    return bronze


def through_spark(bronze, zoo, manifest, partitions: int) -> int:
    execution = {"device": "cpu", "xai_partitions": partitions}
    silver = compute_silver_xai(bronze, zoo, manifest, {"engine": ENGINE}, execution)
    rows = silver.count()
    silver.unpersist()
    return rows


def growth_rows(images: list[int], seconds: list[float], label: str) -> list[tuple[str, str]]:
    """Marginal ms per image between consecutive sizes, their spread, and a fitted line."""
    points = list(zip(images, seconds, strict=True))
    marginal = [1000 * (t1 - t0) / (n1 - n0) for (n0, t0), (n1, t1) in itertools.pairwise(points)]
    slope, fixed = np.polyfit(images, seconds, 1)
    worst = max(abs(t - (fixed + slope * n)) / t for n, t in points)
    spread = max(marginal) / min(marginal) - 1 if min(marginal) > 0 else float("inf")
    return [
        (f"{label}: marginal ms/image", " / ".join(f"{m:.2f}" for m in marginal)),
        (f"{label}: marginal cost spread (max/min - 1)", f"{spread:.1%}"),
        (f"{label}: line fit", f"{fixed:.2f} s + {1000 * slope:.2f} ms/image"),
        (f"{label}: largest deviation from the line", f"{worst:.1%}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="images at 1x")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--partitions", type=int, default=2, help="= cores used by Spark")
    args = parser.parse_args()
    import yaml

    conf = yaml.safe_load((ROOT / "conf/base/spark.yml").read_text())
    conf["spark.master"] = f"local[{args.partitions}]"
    configure_spark(conf)
    spark = get_spark()
    # The direct engine gets the same cores Spark has (one torch thread per Spark task).
    torch.set_num_threads(args.partitions)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        backbone, zoo, manifest = build_zoo(Path(tmp))
        warm = cached_bronze(spark, bronze_frame(16))
        through_spark(warm, zoo, manifest, args.partitions)  # start and warm the workers
        for factor in args.factors:
            frame = bronze_frame(args.images * factor)
            bronze = cached_bronze(spark, frame)
            t_direct, _ = timed(lambda f=frame: direct(backbone, zoo, f), repeats=args.repeats)
            t_spark, rows = timed(
                lambda b=bronze: through_spark(b, zoo, manifest, args.partitions),
                repeats=args.repeats,
            )
            bronze.unpersist()
            results.append((factor, len(frame), rows, t_direct, t_spark))
    base = results[0]
    table = [("machine", f"CPU, {args.partitions} Spark cores; commit {commit()}")]
    for factor, n, rows, t_direct, t_spark in results:
        table += [
            (f"{factor}x: images / silver rows", f"{n} / {rows}"),
            (f"{factor}x: engine direct (s)", f"{t_direct:.2f}"),
            (f"{factor}x: through Spark (s)", f"{t_spark:.2f}"),
            (f"{factor}x: Spark overhead", f"{t_spark / t_direct - 1:+.1%}"),
            (f"{factor}x: Spark time / (factor x 1x time)", f"{t_spark / (factor * base[4]):.3f}"),
        ]
    table += growth_rows(
        [n for _, n, *_ in results], [t for *_, t in results], "through Spark"
    ) + growth_rows([n for _, n, *_ in results], [r[3] for r in results], "engine direct")
    print_table("spark_overhead (xai_silver, small ViT)", table)
    spark.stop()


if __name__ == "__main__":
    main()
