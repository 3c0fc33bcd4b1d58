"""Stable, stratified split assignment (core.splits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.data.splits import assign_splits, split_counts, validate_fractions

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def frame(class_sizes: dict[int, int], split=None, prefix: str = "img") -> pd.DataFrame:
    rows = [
        {"image_id": f"{prefix}{label:02d}_{i:04d}", "label": label, "split": split}
        for label, n in class_sizes.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows)


def counts(df: pd.DataFrame, splits: pd.Series) -> dict[int, dict[str, int]]:
    table = pd.crosstab(df["label"], splits)
    return {int(k): {s: int(v) for s, v in row.items() if v} for k, row in table.iterrows()}


def test_stable_under_row_shuffling_and_reindexing():
    df = frame({0: 50, 1: 37, 2: 12})
    first = dict(zip(df["image_id"], assign_splits(df, FRACTIONS, seed=3), strict=True))
    shuffled = df.sample(frac=1.0, random_state=11)
    shuffled.index = [f"row{i}" for i in range(len(shuffled))][::-1]
    out = assign_splits(shuffled, FRACTIONS, seed=3)
    assert list(out.index) == list(shuffled.index)
    assert dict(zip(shuffled["image_id"], out, strict=True)) == first


def test_seed_changes_membership_not_counts():
    df = frame({0: 50, 1: 37})
    a, b = assign_splits(df, FRACTIONS, seed=1), assign_splits(df, FRACTIONS, seed=2)
    assert (a != b).any()
    assert counts(df, a) == counts(df, b)


def test_other_classes_do_not_move_a_class():
    small = frame({0: 30})
    big = pd.concat([small, frame({1: 40, 2: 7})], ignore_index=True)
    a = assign_splits(small, FRACTIONS, seed=0)
    b = assign_splits(big, FRACTIONS, seed=0)
    assert list(a) == list(b.iloc[: len(small)])


def test_stratified_largest_remainder_counts():
    df = frame({0: 50, 1: 20, 2: 3, 3: 2, 4: 1})
    got = counts(df, assign_splits(df, FRACTIONS, seed=0))
    assert got[0] == {"train": 35, "val": 8, "test": 7}  # 35 / 7.5 / 7.5: tie goes to val
    assert got[1] == {"train": 14, "val": 3, "test": 3}
    assert got[2] == {"train": 1, "val": 1, "test": 1}  # n >= 3: val and test are never empty
    assert got[3] == {"train": 2}
    assert got[4] == {"train": 1}


def test_split_counts_always_sum_to_n():
    rng = np.random.default_rng(0)
    for _ in range(200):
        raw = rng.random(4) * (rng.random(4) > 0.3)
        if raw.sum() == 0:
            continue
        fr = dict(zip(("pretrain", "train", "val", "test"), raw / raw.sum(), strict=True))
        n = int(rng.integers(0, 200))
        c = split_counts(n, fr)
        assert sum(c.values()) == n
        positive = [s for s, f in fr.items() if f > 0]
        assert all(c[s] == 0 for s in fr if fr[s] == 0)
        if n >= len(positive):
            assert all(c[s] >= 1 for s in positive)
        for s in positive:  # never far from the exact quota
            assert abs(c[s] - n * fr[s]) <= len(positive)


def test_trainval_is_carved_and_official_test_kept():
    df = pd.concat(
        [
            frame({0: 40, 1: 9}, split="trainval", prefix="tv"),
            frame({0: 10, 1: 5}, split="test", prefix="te"),
            frame({0: 4}, split="pretrain", prefix="pre"),
            frame({1: 2}, split="val", prefix="va"),
        ],
        ignore_index=True,
    )
    out = assign_splits(df, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=5)
    assert (out[df["split"] == "test"] == "test").all()
    assert (out[df["split"] == "pretrain"] == "pretrain").all()
    assert (out[df["split"] == "val"] == "val").all()
    carved = df["split"] == "trainval"
    assert set(out[carved]) == {"train", "val"}
    got = counts(df[carved], out[carved])
    assert got[0] == {"train": 35, "val": 5}  # val share 0.1 / 0.8 = 12.5 %
    assert got[1] == {"train": 8, "val": 1}  # 1.125 -> 1


def test_rows_without_split_and_nan_are_split_by_fractions():
    df = frame({0: 20})
    df["split"] = np.nan
    out = assign_splits(df, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    assert out.value_counts().to_dict() == {"train": 10, "val": 5, "test": 5}
    assert out.name == "split"


def test_duplicated_dataframe_index_is_fine():
    df = frame({0: 10, 1: 10})
    df.index = [0] * len(df)
    out = assign_splits(df, FRACTIONS, seed=0)
    reference = assign_splits(df.reset_index(drop=True), FRACTIONS, seed=0)
    assert list(out) == list(reference)


def test_pretrain_fraction_for_unsplit_rows():
    df = frame({0: 40})
    out = assign_splits(df, {"pretrain": 0.5, "train": 0.3, "val": 0.1, "test": 0.1}, seed=0)
    assert out.value_counts().to_dict() == {"pretrain": 20, "train": 12, "val": 4, "test": 4}


@pytest.mark.parametrize(
    ("fractions", "match"),
    [
        ({"train": 0.8, "val": 0.3}, "sum to 1"),
        ({"train": 1.2, "val": -0.2}, ">= 0"),
        ({"train": 0.5, "holdout": 0.5}, "unknown split names"),
        ({"train": float("nan"), "val": 1.0}, "finite"),
        ({"train": "most", "val": 0.1}, "not a number"),
        ({}, "at least one"),
    ],
)
def test_fraction_validation(fractions, match):
    with pytest.raises(ValueError, match=match):
        validate_fractions(fractions)
    with pytest.raises(ValueError, match=match):
        assign_splits(frame({0: 5}), fractions, seed=0)


def test_fractions_within_tolerance_are_accepted():
    assert validate_fractions({"train": 0.7, "val": 0.2, "test": 0.1 + 5e-7})["test"] > 0.1


def test_bad_frames():
    with pytest.raises(ValueError, match="missing"):
        assign_splits(pd.DataFrame({"image_id": ["a"], "label": [0]}), FRACTIONS, seed=0)
    dup = pd.DataFrame({"image_id": ["a", "a"], "label": [0, 0], "split": [None, None]})
    with pytest.raises(ValueError, match="unique"):
        assign_splits(dup, FRACTIONS, seed=0)
    odd = pd.DataFrame({"image_id": ["a"], "label": [0], "split": ["holdout"]})
    with pytest.raises(ValueError, match="holdout"):
        assign_splits(odd, FRACTIONS, seed=0)
    tv = frame({0: 4}, split="trainval")
    with pytest.raises(ValueError, match="trainval"):
        assign_splits(tv, {"test": 1.0}, seed=0)


def test_split_params_are_checked_with_the_setting_name():
    from xai_kedro.core.data.splits import validate_split_params

    good = validate_split_params({"fractions": {"train": 0.5, "test": 0.5}, "seed": 3})
    assert good == {"fractions": {"train": 0.5, "test": 0.5}, "seed": 3}
    with pytest.raises(ValueError, match=r"^ingestion\.split\.fractions must sum to 1"):
        validate_split_params({"fractions": {"train": 0.5, "test": 0.4}, "seed": 0})
    with pytest.raises(ValueError, match=r"ingestion\.split\.fractions must name"):
        validate_split_params({"seed": 0})
    with pytest.raises(ValueError, match=r"ingestion\.split\.seed must be an integer"):
        validate_split_params({"fractions": {"train": 1.0}, "seed": "zero"})
    with pytest.raises(ValueError, match=r"ingestion\.split must be a mapping"):
        validate_split_params([0.5, 0.5])
