"""Bronze rows, the fingerprint that keys their reuse, and the end-of-ingestion checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.data.bronze import (
    IngestionError,
    check_bronze,
    describe_changes,
    files_table,
    input_fingerprint,
    pixels_from_rows,
    quarantine_summary,
)

SETTINGS = {"decode": {"storage_size": 32}, "split": {"seed": 0}}


def files(**changes) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "path": ["/here/a.png", "/here/b.png"],
            "rel_path": ["a.png", "b.png"],
            "image_id": ["ia", "ib"],
            "label": [0, 1],
            "label_name": ["cat", "dog"],
            "split": [None, None],
            "mask_path": [None, None],
            "problem": [None, None],
            "size_bytes": [10, 20],
            "file_hash": ["h1", "h2"],
            "mask_size_bytes": [None, None],
            "mask_hash": [None, None],
        }
    )
    for column, values in changes.items():
        frame[column] = values
    return frame


def test_fingerprint_follows_content_and_settings_not_location_or_order():
    base = input_fingerprint(files(), SETTINGS)
    assert input_fingerprint(files(path=["/moved/a.png", "/moved/b.png"]), SETTINGS) == base
    assert input_fingerprint(files().iloc[::-1], SETTINGS) == base
    assert input_fingerprint(files(file_hash=["h1", "h3"]), SETTINGS) != base
    assert input_fingerprint(files(size_bytes=[10, 21]), SETTINGS) != base
    assert input_fingerprint(files(problem=[None, "too_large"]), SETTINGS) != base
    assert input_fingerprint(files(label=[0, 0]), SETTINGS) != base
    assert input_fingerprint(files(), {**SETTINGS, "split": {"seed": 1}}) != base


def test_describe_changes_names_changed_added_and_removed_files():
    before = files_table(files())
    after = files_table(
        pd.concat([files(file_hash=["h1", "new"]), files(rel_path=["c.png", "b.png"]).iloc[:1]])
    )
    text = describe_changes(before, after)
    assert text == "1 files changed (b.png), 1 added (c.png), 0 removed"
    assert describe_changes(after, before).endswith("1 removed (c.png)")
    assert describe_changes(before, before) == "0 files changed, 0 added, 0 removed"


def counts(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["split", "label", "count"])


QUARANTINE = pd.DataFrame(
    {"source_path": ["x", "y", "z"], "reason": ["truncated", "not_an_image", "truncated"]}
)
CLASSES = {0: "cat", 1: "dog"}


def test_checks_pass_on_usable_bronze():
    rows = [(s, label, 2) for s in ("train", "val", "test") for label in (0, 1)]
    check_bronze(counts(rows), CLASSES, QUARANTINE, "/data/x", ("train", "val", "test"), ("train",))


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([], r"no usable image under /data/x: 3 listed files.*truncated 2, not_an_image 1"),
        ([("train", 0, 3), ("train", 1, 3), ("test", 0, 1)], r"split 'val' has no image"),
        (
            [("train", 0, 3), ("val", 1, 1), ("test", 1, 1), ("val", 0, 1), ("test", 0, 1)],
            r"class 'dog' \(label 1\) has no usable image in split 'train' under /data/x",
        ),
    ],
)
def test_checks_fail_naming_root_and_quarantine_counts(rows, match):
    with pytest.raises(IngestionError, match=match) as error:
        check_bronze(
            counts(rows), CLASSES, QUARANTINE, "/data/x", ("train", "val", "test"), ("train",)
        )
    assert "/data/x" in str(error.value) and "truncated 2" in str(error.value)


def test_quarantine_summary():
    assert quarantine_summary(QUARANTINE.iloc[:0]) == "none"
    assert quarantine_summary(QUARANTINE) == "truncated 2, not_an_image 1"


def test_pixels_from_rows_round_trip():
    pixels = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    rows = pd.DataFrame(
        {"height": [4, 4], "width": [4, 4], "pixels": [p.tobytes() for p in pixels]}
    )
    assert np.array_equal(pixels_from_rows(rows), pixels)
    rows.loc[1, "height"] = 2
    with pytest.raises(ValueError, match="different sizes"):
        pixels_from_rows(rows)
