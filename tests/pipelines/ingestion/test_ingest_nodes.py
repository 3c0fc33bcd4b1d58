"""Ingestion through Spark on a folder mixing good images of every mode with broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xai_kedro.core.data.bronze import masks_from_rows, pixels_from_rows
from xai_kedro.pipelines.ingestion.nodes import ingest_images, list_images

PARAMS = {
    "storage_size": 32,
    "min_side": 16,
    "max_pixels": 10_000_000,
    "mask_foreground_values": [1, 3, 255],
    "split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
}


def _save(img: Image.Image, path: Path, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _hostile_folder(root: Path) -> dict[str, str]:
    """Two classes of good images in many PIL modes, plus broken files; returns expected reasons."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    goods = {
        "cats/rgb.png": (rgb, "PNG", {}),
        "cats/gray.png": (rgb.convert("L"), "PNG", {}),
        "cats/palette.png": (rgb.convert("P"), "PNG", {}),
        "cats/rgba.png": (rgb.convert("RGBA"), "PNG", {}),
        "cats/cmyk.jpg": (rgb.convert("CMYK"), "JPEG", {}),
        "dogs/sixteen.png": (
            Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)),
            "PNG",
            {},
        ),
        "dogs/bw.png": (rgb.convert("1"), "PNG", {}),
        "dogs/rgb.jpg": (rgb.rotate(90, expand=True), "JPEG", {"quality": 90}),
        "dogs/la.png": (rgb.convert("LA"), "PNG", {}),
    }
    for rel, (img, fmt, kwargs) in goods.items():
        _save(img, root / rel, fmt, **kwargs)
    original = (root / "cats/rgb.png").read_bytes()
    (root / "dogs/copy_of_cat.png").write_bytes(original)
    (root / "cats/empty.jpg").write_bytes(b"")
    (root / "cats/notes.jpg").write_text("this is not an image")
    jpeg = _save(rgb, root / "dogs/full.jpg", "JPEG")
    (root / "dogs/truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    _save(Image.new("RGB", (8, 8), "red"), root / "dogs/tiny.png", "PNG")
    return {
        "cats/empty.jpg": "empty",
        "cats/notes.jpg": "not_an_image",
        "dogs/truncated.jpg": "truncated",
        "dogs/tiny.png": "too_small",
        "dogs/copy_of_cat.png": "duplicate",
    }


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    expected = _hostile_folder(root)
    source = {"kind": "image_folder", "name": "hostile", "root": str(root)}
    listing = list_images(source)
    bronze, quarantine = ingest_images(listing, source, PARAMS)
    return expected, bronze.toPandas(), quarantine, listing


def test_broken_files_are_quarantined_with_their_reason(ingested):
    expected, bronze, quarantine, _ = ingested
    reasons = dict(zip(quarantine["source_path"], quarantine["reason"], strict=True))
    assert reasons == expected
    assert quarantine["message"].str.len().gt(0).all()
    duplicate = quarantine.set_index("source_path").loc["dogs/copy_of_cat.png", "message"]
    assert "cats/rgb.png" in duplicate


def test_good_images_of_every_mode_become_rgb_rows(ingested):
    expected, bronze, _, listing = ingested
    assert len(bronze) == len(listing) - len(expected)
    assert set(bronze["source_path"]).isdisjoint(expected)
    pixels = pixels_from_rows(bronze)
    assert pixels.shape == (len(bronze), 32, 32, 3)
    assert bronze["image_id"].is_unique
    assert set(bronze["label_name"]) == {"cats", "dogs"}
    assert set(bronze["split"]) <= {"train", "val", "test"}
    assert masks_from_rows(bronze) is None
    assert bronze["content_hash"].str.len().eq(64).all()


def test_second_run_gives_identical_ids_and_splits(spark, ingested, tmp_path):
    _, bronze, _, listing = ingested
    source = {
        "kind": "image_folder",
        "name": "hostile",
        "root": str(Path(listing["path"][0]).parents[1]),
    }
    again, _ = ingest_images(list_images(source), source, PARAMS)
    again = again.toPandas()
    left = bronze.set_index("image_id")[["split", "label", "content_hash"]].sort_index()
    right = again.set_index("image_id")[["split", "label", "content_hash"]].sort_index()
    assert left.equals(right)


def test_synthetic_source_keeps_masks_and_generator_splits(spark, tmp_path):
    source = {
        "kind": "synthetic",
        "name": "synthetic",
        "root": str(tmp_path / "synthetic"),
        "synthetic": {
            "num_classes": 3,
            "image_size": 32,
            "images_per_class": {"pretrain": 2, "train": 3, "val": 2, "test": 2},
            "seed": 1,
        },
    }
    bronze, quarantine = ingest_images(list_images(source), source, PARAMS)
    bronze = bronze.toPandas()
    assert quarantine.empty
    assert len(bronze) == 3 * 9
    assert bronze.groupby("split").size().to_dict() == {
        "pretrain": 6,
        "test": 6,
        "train": 9,
        "val": 6,
    }
    masks = masks_from_rows(bronze.sort_values("image_id"))
    assert masks is not None and len(masks) == 27
    stacked = np.stack(masks)
    assert stacked.shape == (27, 32, 32)
    assert set(np.unique(stacked)) == {0, 1}
