"""kedro-viz previews that kedro-datasets lacks or gets wrong.

The failure gallery is a folder of figures (a `MatplotlibDataset` saving a list), whose stock
preview expects one file; the summary report is a `TextDataset`, which has no preview at all;
a pandas Parquet table with an array column (heatmaps) has a stock preview kedro-viz cannot
serialise (`kedro viz build --include-previews` fails on it), and its floats are unrounded.
Tables (pandas here, Spark in `datasets.spark`) share one renderer: first rows, array and
byte cells summarised, floats rounded.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NewType

from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.text import TextDataset

# kedro-viz picks the renderer from the name of `preview()`'s return annotation.
ImagePreview = NewType("ImagePreview", str)
TextPreview = NewType("TextPreview", str)
TablePreview = NewType("TablePreview", dict)

GALLERY_SUFFIXES = (".png", ".jpg", ".jpeg")

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


def parquet_preview(files: Sequence[Path | str], nrows: int) -> TablePreview:
    """The first `nrows` rows of Parquet `files`, in pandas' `split` layout (what kedro-viz's
    table expects), every cell through `preview_cell`; only the first row groups are read."""
    import pyarrow.parquet as pq

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


class ParquetPreviewDataset(ParquetDataset):
    """kedro-datasets' pandas `ParquetDataset` with `parquet_preview` as its preview."""

    def preview(self, nrows: int = DEFAULT_PREVIEW_ROWS) -> TablePreview:
        path = Path(str(self._get_load_path()))
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist yet (has the run written it?)")
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        return parquet_preview(files, nrows)


class GalleryDataset(MatplotlibDataset):
    """A folder of figures; previews its first figure (in name order)."""

    def preview(self) -> ImagePreview:
        root = Path(str(self._get_load_path()))
        if root.is_file():
            images = [root]
        else:
            images = sorted(p for p in root.iterdir() if p.suffix.lower() in GALLERY_SUFFIXES)
        if not images:
            raise FileNotFoundError(f"no figure in {root} to preview (has the run written it?)")
        return ImagePreview(base64.b64encode(images[0].read_bytes()).decode("ascii"))


class ReportDataset(TextDataset):
    """A text or Markdown report; previews its text."""

    def preview(self) -> TextPreview:
        return TextPreview(self.load())
