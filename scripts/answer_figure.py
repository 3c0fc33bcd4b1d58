"""The README's one figure: the answer per shift family, drawn from finished runs' Gold tables.

Left: each hypothesis feature's Pearson r with correctness under the family, signed so that
> 0 means "as the hypothesis expects" (image-clustered 95% intervals, `family_hypothesis`, all
classes). Right: XAI + confidence minus the confidence meta-learner, AUROC difference
(`family_headline`, all classes). One marker per run.

    .venv/bin/python scripts/answer_figure.py base=data zoo=data/zoo --out docs/figures/answer.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

HEADLINE = "meta:xai+confidence - meta:confidence"
ALL_CLASSES = "all"
GOLD = "04_gold"


def _all_classes(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["class"] == ALL_CLASSES] if "class" in table.columns else table


def hypothesis_points(root: Path) -> pd.DataFrame:
    """(family, feature, r, low, high) with r signed by the expected sign."""
    hyp = _all_classes(pd.read_parquet(root / GOLD / "family_hypothesis.parquet"))
    sign = hyp["expected_sign"].astype(float)
    low, high = hyp["pearson_ci_low"] * sign, hyp["pearson_ci_high"] * sign
    return pd.DataFrame(
        {
            "shift_family": hyp["shift_family"],
            "feature": hyp["feature"],
            "r": hyp["pearson_r"] * sign,
            "low": low.where(sign > 0, high),
            "high": high.where(sign > 0, low),
        }
    ).reset_index(drop=True)


def headline_points(root: Path) -> pd.DataFrame:
    """(family, diff, low, high) of XAI + confidence minus the confidence meta-learner."""
    head = _all_classes(pd.read_parquet(root / GOLD / "family_headline.parquet"))
    head = head[head["comparison"] == HEADLINE]
    return pd.DataFrame(
        {
            "shift_family": head["shift_family"],
            "diff": head["auroc_diff"],
            "low": head["auroc_diff_ci_low"],
            "high": head["auroc_diff_ci_high"],
        }
    ).reset_index(drop=True)


def _rows(runs: dict[str, Path]) -> list[str]:
    """Row labels (family: feature) in the first run's order."""
    first = hypothesis_points(next(iter(runs.values())))
    return [f"{f}: {g}" for f, g in zip(first["shift_family"], first["feature"], strict=True)]


def draw(runs: dict[str, Path], out: Path) -> None:
    rows = _rows(runs)
    families = list(dict.fromkeys(r.split(":")[0] for r in rows))
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 0.35 * len(rows) + 1.6), gridspec_kw={"width_ratios": [3, 2]}
    )
    offsets = {label: 0.25 * (i - (len(runs) - 1) / 2) for i, label in enumerate(runs)}
    for label, root in runs.items():
        hyp = hypothesis_points(root)
        keys = [f"{f}: {g}" for f, g in zip(hyp["shift_family"], hyp["feature"], strict=True)]
        y = [rows.index(k) + offsets[label] for k in keys]
        err = [hyp["r"] - hyp["low"], hyp["high"] - hyp["r"]]
        left.errorbar(hyp["r"], y, xerr=err, fmt="o", capsize=3, label=label)
        head = headline_points(root)
        y = [families.index(f) + offsets[label] for f in head["shift_family"]]
        err = [head["diff"] - head["low"], head["high"] - head["diff"]]
        right.errorbar(head["diff"], y, xerr=err, fmt="o", capsize=3, label=label)
    for ax, labels in ((left, rows), (right, families)):
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
    left.set_xlabel("r with correctness under shift\n(signed: > 0 = as the hypothesis expects)")
    right.set_xlabel("AUROC difference\n(XAI + confidence minus confidence)")
    left.set_title("Does a focused clean-image explanation stay correct?", fontsize=10)
    right.set_title("Does XAI add to confidence?", fontsize=10)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(runs), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="label=data_root, e.g. base=data zoo=data/zoo")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/answer.png"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    runs = {}
    for item in args.runs:
        label, sep, root = item.partition("=")
        if not sep or not (Path(root) / GOLD / "family_hypothesis.parquet").is_file():
            raise SystemExit(f"{item}: expected label=data_root of a finished run")
        runs[label] = Path(root)
    draw(runs, args.out)


if __name__ == "__main__":
    main()
