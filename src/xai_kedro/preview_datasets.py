"""kedro-viz previews for the two reporting datasets that kedro-datasets leaves without one.

The failure gallery is a folder of figures (a `MatplotlibDataset` saving a list), whose stock
preview expects one file; the summary report is a `TextDataset`, which has no preview at all.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import NewType

from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.text import TextDataset

# kedro-viz picks the renderer from the name of `preview()`'s return annotation.
ImagePreview = NewType("ImagePreview", str)
TextPreview = NewType("TextPreview", str)

GALLERY_SUFFIXES = (".png", ".jpg", ".jpeg")


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
