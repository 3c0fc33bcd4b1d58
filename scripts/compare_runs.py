"""Compare the Bronze, Silver and Gold tables of two `kedro run`s (e.g. before/after a refactor).

    python scripts/compare_runs.py /path/to/run_a /path/to/run_b

Each argument is a project root; its data/ folder is read (`--data-root data/zoo` for zoo runs).
Bronze and Silver tables are sorted by their keys first (Spark writes rows in no fixed order);
Gold tables and the summary report are compared as written. Absolute paths inside string columns
are compared relative to each project root, and wall-time columns and their intervals are
ignored (`--ignore`). Exits 1 and lists every difference when the runs differ.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

logger = logging.getLogger("compare_runs")

KEYED_TABLES = {
    "02_bronze/bronze_images.parquet": ["image_id"],
    "02_bronze/bronze_embeddings.parquet": ["image_id"],
    "02_bronze/bronze_quarantine.parquet": ["source_path"],
    "03_silver/silver_xai.parquet": ["image_id", "adapter_id"],
    # shift_family: since issue 26 (a run before it has no such column: sorted without it)
    "03_silver/silver_ood.parquet": [
        "image_id",
        "adapter_id",
        "shift_family",
        "corruption",
        "severity",
    ],
}
# Tables that older commits do not write: compared when both runs have them, an error when one has.
OPTIONAL_TABLES = {
    "03_silver/silver_source.parquet": [
        "image_id",
        "adapter_id",
        "shift_family",
        "corruption",
        "severity",
    ],
    "03_silver/silver_xai_explainers.parquet": ["image_id", "adapter_id", "explainer"],
    "03_silver/silver_explainer_scores.parquet": ["image_id", "adapter_id", "explainer"],
}
GOLD_DIR = "04_gold"
TEXT_FILES = ("08_reporting/summary_report.md",)
TIMING_COLUMNS = (
    "duration_s",
    "saved_at_unix",
    "seconds_per_image",
    "time_per_image_s",
    "backbone_training_seconds",
    "adapter_training_seconds",
)


def read_table(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def _relative(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    prefix = str(root.resolve()) + "/"
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object and out[col].map(lambda v: isinstance(v, str)).any():
            out[col] = out[col].map(lambda v: v.replace(prefix, "") if isinstance(v, str) else v)
    return out


def _cell_equal(a: object, b: object, atol: float) -> bool:
    if isinstance(a, np.ndarray | list) or isinstance(b, np.ndarray | list):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        return a_arr.shape == b_arr.shape and np.allclose(a_arr, b_arr, atol=atol, rtol=0)
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= atol
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b)


def frame_differences(
    a: pd.DataFrame, b: pd.DataFrame, name: str, atol: float, limit: int = 5
) -> list[str]:
    if list(a.columns) != list(b.columns):
        return [f"{name}: columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"{name}: {len(a)} vs {len(b)} rows"]
    problems = []
    for col in a.columns:
        bad = [
            i
            for i, (x, y) in enumerate(zip(a[col], b[col], strict=True))
            if not _cell_equal(x, y, atol)
        ]
        if bad:
            i = bad[0]
            problems.append(
                f"{name}.{col}: {len(bad)} of {len(a)} rows differ (first at row {i}: "
                f"{a[col].iloc[i]!r:.80} vs {b[col].iloc[i]!r:.80})"
            )
        if len(problems) >= limit:
            break
    return problems


def _without(frame: pd.DataFrame, ignore: tuple[str, ...]) -> pd.DataFrame:
    """Drop each ignored column and its derived ones (`seconds_per_image_ci_low`, ...)."""
    return frame.drop(
        columns=[c for c in frame.columns if any(c == i or c.startswith(f"{i}_") for i in ignore)]
    )


def compare_runs(
    root_a: Path,
    root_b: Path,
    ignore: tuple[str, ...],
    atol: float,
    data_root: str = "data",
) -> list[str]:
    data_a, data_b = root_a / data_root, root_b / data_root
    problems: list[str] = []
    tables: list[tuple[str, list[str] | None]] = list(KEYED_TABLES.items())
    for rel, keys in OPTIONAL_TABLES.items():
        if (data_a / rel).exists() or (data_b / rel).exists():
            tables.append((rel, keys))
    gold = sorted({p.name for p in (data_a / GOLD_DIR).glob("*.parquet")})
    gold_b = sorted({p.name for p in (data_b / GOLD_DIR).glob("*.parquet")})
    if gold != gold_b:
        problems.append(f"Gold tables differ: {sorted(set(gold) ^ set(gold_b))}")
    tables += [(f"{GOLD_DIR}/{name}", None) for name in gold if name in gold_b]
    for rel, keys in tables:
        path_a, path_b = data_a / rel, data_b / rel
        if not path_a.exists() or not path_b.exists():
            problems.append(f"{rel}: missing in {'a' if not path_a.exists() else 'b'}")
            continue
        a, b = (
            _without(_relative(read_table(p), root), ignore)
            for p, root in ((path_a, root_a), (path_b, root_b))
        )
        if keys:
            keys = [k for k in keys if k in a.columns and k in b.columns]
            a = a.sort_values(keys, ignore_index=True)
            b = b.sort_values(keys, ignore_index=True)
        found = frame_differences(a, b, rel, atol)
        logger.info("%s: %d rows, %s", rel, len(a), "equal" if not found else "DIFFERENT")
        problems += found
    for rel in TEXT_FILES:
        missing = [name for name, d in (("a", data_a), ("b", data_b)) if not (d / rel).is_file()]
        if missing:
            problems.append(f"{rel}: missing in {', '.join(missing)}")
            continue
        text_a, text_b = ((d / rel).read_text() for d in (data_a, data_b))
        if text_a != text_b:
            problems.append(f"{rel}: text differs")
        logger.info("%s: %s", rel, "equal" if text_a == text_b else "DIFFERENT")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--ignore", nargs="*", default=list(TIMING_COLUMNS))
    parser.add_argument("--atol", type=float, default=0.0, help="absolute tolerance for floats")
    parser.add_argument(
        "--data-root",
        default="data",
        help="the runs' data_root global, relative to each root (data/zoo for `--env zoo` runs)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    problems = compare_runs(args.run_a, args.run_b, tuple(args.ignore), args.atol, args.data_root)
    for problem in problems:
        logger.error(problem)
    logger.info("runs are %s", "DIFFERENT" if problems else "identical")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
