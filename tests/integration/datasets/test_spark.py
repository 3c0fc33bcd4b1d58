"""Spark tables preview in kedro-viz from their Parquet files: first rows only, heavy cells
summarised, floats rounded, row counts from the footers; no Spark session is started."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xai_kedro.integration.datasets.preview import preview_cell
from xai_kedro.integration.datasets.spark import SparkPreviewDataset

ROWS_PER_FILE = 7


@pytest.fixture
def spark_like_table(tmp_path):
    """A directory laid out as Spark writes Parquet: part files, _SUCCESS, a .crc file."""
    root = tmp_path / "silver.parquet"
    root.mkdir()
    for part in range(3):
        start = part * ROWS_PER_FILE
        table = pa.table(
            {
                "image_id": [f"img{start + i:03d}" for i in range(ROWS_PER_FILE)],
                "pixels": [bytes(3072)] * ROWS_PER_FILE,
                "embedding": [[0.123456789] * 32] * ROWS_PER_FILE,
                "score": [1 / 3 + i for i in range(ROWS_PER_FILE)],
                "gini": [float("nan")] * ROWS_PER_FILE,
            }
        )
        pq.write_table(table, root / f"part-{part:05d}-abc.snappy.parquet")
    (root / "_SUCCESS").write_text("")
    (root / ".part-00000-abc.snappy.parquet.crc").write_bytes(b"\0")
    return root


def test_preview_is_the_first_rows_with_readable_cells(spark_like_table):
    dataset = SparkPreviewDataset(filepath=str(spark_like_table))
    preview = dataset.preview(nrows=10)
    assert preview["columns"] == ["image_id", "pixels", "embedding", "score", "gini"]
    assert len(preview["data"]) == 10 and preview["index"] == list(range(10))
    first = dict(zip(preview["columns"], preview["data"][0], strict=True))
    assert [row[0] for row in preview["data"]] == [f"img{i:03d}" for i in range(10)]
    assert first["pixels"] == "<3072 bytes>"
    assert first["embedding"] == "[0.1235, 0.1235, 0.1235, 0.1235, ... 32 values]"
    assert first["score"] == 0.3333 and first["gini"] is None
    json.dumps(preview, allow_nan=False)  # what kedro-viz sends to the browser


def test_stats_come_from_the_footers(spark_like_table):
    stats = SparkPreviewDataset(filepath=str(spark_like_table)).table_stats()
    assert stats["rows"] == 3 * ROWS_PER_FILE and stats["columns"] == 5
    assert stats["file_size"] == sum(p.stat().st_size for p in spark_like_table.glob("part-*"))


def test_preview_type_is_a_table_for_kedro_viz():
    import inspect

    annotation = inspect.signature(SparkPreviewDataset.preview).return_annotation
    assert getattr(annotation, "__name__", str(annotation)).endswith("TablePreview")


def test_short_lists_and_long_text_cells():
    assert preview_cell([1.0, 2.5]) == [1.0, 2.5]
    assert preview_cell("x" * 200).endswith("...") and len(preview_cell("x" * 200)) == 80
    assert preview_cell(None) is None and preview_cell(True) is True


def test_a_table_not_written_yet_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist yet"):
        SparkPreviewDataset(filepath=str(tmp_path / "missing.parquet")).preview()
