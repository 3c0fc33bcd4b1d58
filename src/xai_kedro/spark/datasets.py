"""Spark tables that kedro-viz can preview and count without Spark and without a full scan.

`SparkPreviewDataset` is kedro-datasets' `SparkDatasetV2` plus a `preview()` that reads the
first rows straight from the Parquet files (pyarrow: no JVM starts for `kedro viz`), and a
`table_stats()` that takes the row count from the Parquet footers. Image pixels, masks and
embeddings are summarised in the preview (`<3072 bytes>`, `[0.12, -0.5, ... 384 values]`)
and floats are rounded, so the table stays readable. `xai_kedro.hooks.SparkTableStatsHook` writes
those stats into kedro-viz's stats file after a run, beside the ones it collects for pandas.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NewType

from kedro_datasets.spark import SparkDatasetV2

# kedro-viz picks the preview renderer from the return annotation's name.
TablePreview = NewType("TablePreview", dict)

DEFAULT_PREVIEW_ROWS = 10
LIST_HEAD = 4  # values shown of an array cell
SIGNIFICANT_DIGITS = 4
MAX_TEXT = 80  # characters shown of a text cell


def _round(value: float) -> float | None:
    if not math.isfinite(value):
        return None  # NaN / inf are not JSON
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def preview_cell(value: Any) -> Any:
    """A JSON-safe, short rendering of one Parquet cell."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, bool | int):
        return value
    if isinstance(value, list | tuple):
        head = [preview_cell(v) for v in value[:LIST_HEAD]]
        if len(value) <= LIST_HEAD:
            return head
        return f"[{', '.join(str(v) for v in head)}, ... {len(value)} values]"
    if isinstance(value, dict):
        return {k: preview_cell(v) for k, v in value.items()}
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


class SparkPreviewDataset(SparkDatasetV2):
    """`SparkDatasetV2` with a kedro-viz preview and stats read from local Parquet files."""

    def _parquet_files(self) -> list[Path]:
        if self._file_format != "parquet" or self._protocol != "file":
            raise NotImplementedError(
                f"preview reads local Parquet only, not {self._protocol}://...{self._file_format}"
            )
        root = Path(str(self._get_load_path()))
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist yet (has the run written it?)")
        if root.is_file():
            return [root]
        return sorted(
            p
            for p in root.rglob("*.parquet")
            if not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)
        )

    def preview(self, nrows: int = DEFAULT_PREVIEW_ROWS) -> TablePreview:
        """The first `nrows` rows, in pandas' `split` layout (what kedro-viz's table expects)."""
        import pyarrow.parquet as pq

        files = self._parquet_files()
        columns: list[str] = []
        rows: list[list[Any]] = []
        for path in files:
            parquet = pq.ParquetFile(path)
            columns = columns or list(parquet.schema_arrow.names)
            for batch in parquet.iter_batches(batch_size=max(1, nrows - len(rows))):
                rows.extend([preview_cell(v) for v in row.values()] for row in batch.to_pylist())
                break
            if len(rows) >= nrows:
                break
        rows = rows[:nrows]
        return TablePreview({"index": list(range(len(rows))), "columns": columns, "data": rows})

    def table_stats(self) -> dict[str, int]:
        """Rows (from the Parquet footers), columns and bytes on disk: no data is read."""
        import pyarrow.parquet as pq

        files = self._parquet_files()
        if not files:
            return {}
        metadata = [pq.ParquetFile(p).metadata for p in files]
        return {
            "rows": int(sum(m.num_rows for m in metadata)),
            "columns": int(metadata[0].num_columns),
            "file_size": int(sum(p.stat().st_size for p in files)),
        }
