"""The gap of each adapter to the most robust one, with an interval over test images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.meta.adapters.ranking import (
    correctness_matrix,
    not_separated_from_best,
    ranking_intervals,
)
from xai_kedro.core.meta.adapters.settings import EstimationSettings


def _ood(correct: dict[str, np.ndarray]) -> pd.DataFrame:
    """silver_ood rows: each adapter's correctness per image under two corruptions."""
    rows = []
    for adapter, per_image in correct.items():
        for corruption in ("noise", "blur"):
            for i, ok in enumerate(per_image):
                rows.append(
                    {
                        "adapter_id": adapter,
                        "image_id": f"img{i:03d}",
                        "corruption": corruption,
                        "severity": "1",
                        "is_correct": bool(ok),
                    }
                )
    return pd.DataFrame(rows)


def _ranking(ood: pd.DataFrame) -> pd.DataFrame:
    acc = ood.groupby("adapter_id")["is_correct"].mean().sort_values(ascending=False)
    return pd.DataFrame(
        {
            "ood_rank": range(1, len(acc) + 1),
            "adapter_id": acc.index,
            "ood_accuracy": acc.to_numpy(),
        }
    )


def test_correctness_matrix_rows_average_to_the_ood_accuracy() -> None:
    ood = _ood({"a": np.array([1, 0, 1, 1]), "b": np.array([0, 0, 1, 0])})
    m = correctness_matrix(ood, ["a", "b"])
    assert m.shape == (2, 4) and m.mean(axis=1) == pytest.approx([0.75, 0.25])


def test_a_clear_winner_is_separated_and_a_near_tie_is_not() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(400) < 0.7
    # c: the same answers as a except 2 images; b: 120 images worse than a
    c = base.copy()
    c[:2] = ~c[:2]
    b = base & (rng.random(400) < 0.6)
    ood = _ood({"a": base, "b": b, "c": c})
    ranking = _ranking(ood)
    out = ranking_intervals(ranking, ood, EstimationSettings(n_bootstrap=500), seed=0)
    t = out.set_index("adapter_id")
    first = out["adapter_id"].iloc[0]
    assert first in {"a", "c"} and np.isnan(t.loc[first, "gap_to_best_ci_low"])
    assert t.loc["b", "gap_to_best_ci_low"] > 0  # 30 points apart on 400 images
    other = "c" if first == "a" else "a"
    assert t.loc[other, "gap_to_best_ci_low"] <= 0 <= t.loc[other, "gap_to_best_ci_high"]
    assert not_separated_from_best(out) == [other]
    # without the near twin, the winner is separated from everything
    solo = ood[ood.adapter_id != other]
    out2 = ranking_intervals(_ranking(solo), solo, EstimationSettings(n_bootstrap=300))
    assert not_separated_from_best(out2) == []
    # a table without intervals separates nothing
    assert not_separated_from_best(ranking) == list(ranking["adapter_id"].iloc[1:])
