"""The failure gallery and the report have kedro-viz previews."""

from __future__ import annotations

import base64
import inspect

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from xai_kedro.integration.datasets.preview import GalleryDataset, ReportDataset  # noqa: E402


def _annotation_name(dataset_class) -> str:
    annotation = inspect.signature(dataset_class.preview).return_annotation
    return getattr(annotation, "__name__", str(annotation))


def test_the_gallery_previews_its_first_figure(tmp_path):
    figures = []
    for colour in ("red", "blue"):
        figure, axes = plt.subplots(figsize=(2, 2))
        axes.set_facecolor(colour)
        figures.append(figure)
    dataset = GalleryDataset(filepath=str(tmp_path / "gallery"), overwrite=True)
    dataset.save(figures)
    preview = base64.b64decode(dataset.preview())
    assert preview == (tmp_path / "gallery" / "0.png").read_bytes()
    assert preview.startswith(b"\x89PNG")
    assert _annotation_name(GalleryDataset).endswith("ImagePreview")


def test_an_empty_gallery_says_what_is_missing(tmp_path):
    (tmp_path / "gallery").mkdir()
    with pytest.raises(FileNotFoundError, match="no figure"):
        GalleryDataset(filepath=str(tmp_path / "gallery")).preview()


def test_the_report_previews_its_text(tmp_path):
    dataset = ReportDataset(filepath=str(tmp_path / "report.md"))
    dataset.save("# Findings\n\nXAI adds 0.02 AUROC.\n")
    assert dataset.preview() == "# Findings\n\nXAI adds 0.02 AUROC.\n"
    assert _annotation_name(ReportDataset).endswith("TextPreview")


def test_a_pandas_table_with_an_array_column_previews_as_json(tmp_path):
    """The stock pandas preview returns numpy arrays, which `kedro viz build
    --include-previews` cannot serialise; ours summarises them and rounds floats."""
    import json

    import numpy as np
    import pandas as pd

    from xai_kedro.integration.datasets.preview import ParquetPreviewDataset, TablePreview

    frame = pd.DataFrame(
        {
            "image_id": ["a", "b", "c"],
            "confidence": [0.123456789, 0.5, float("nan")],
            "heatmap": [np.full(36, 1 / 36, dtype=np.float32)] * 3,
        }
    )
    dataset = ParquetPreviewDataset(filepath=str(tmp_path / "failures.parquet"))
    dataset.save(frame)
    preview = dataset.preview(nrows=2)
    json.dumps(preview)  # what kedro-viz does with it
    assert preview["columns"] == ["image_id", "confidence", "heatmap"]
    assert preview["data"][0][:2] == ["a", 0.1235]
    assert preview["data"][0][2].endswith("... 36 values]")
    assert len(preview["data"]) == 2
    assert _annotation_name(ParquetPreviewDataset).endswith("TablePreview")
    assert TablePreview.__name__ == "TablePreview"
    pd.testing.assert_frame_equal(dataset.load(), frame)  # loading is the stock dataset's
    with pytest.raises(FileNotFoundError, match="does not exist yet"):
        ParquetPreviewDataset(filepath=str(tmp_path / "missing.parquet")).preview()
