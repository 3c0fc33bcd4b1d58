"""Spark tables that kedro-viz can preview and count without Spark and without a full scan.

`SparkPreviewDataset` is kedro-datasets' `SparkDatasetV2` plus a `preview()` that reads the
first rows straight from the Parquet files (pyarrow: no JVM starts for `kedro viz`), and a
`table_stats()` that takes the row count from the Parquet footers. Image pixels, masks and
embeddings are summarised in the preview (`<3072 bytes>`, `[0.12, -0.5, ... 384 values]`)
and floats are rounded, so the table stays readable. `integration.hooks.SparkTableStatsHook`
writes those stats into kedro-viz's stats file after a run, beside the ones it collects for pandas.
"""

from __future__ import annotations

from pathlib import Path

from kedro_datasets.spark import SparkDatasetV2

from xai_kedro.integration.datasets.preview import (
    DEFAULT_PREVIEW_ROWS,
    TablePreview,
    parquet_preview,
)


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
        return parquet_preview(self._parquet_files(), nrows)

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
