"""Ingestion through Spark on a folder mixing good images of every mode with broken files; the
`paper` env without its dataset; a second `kedro run` that reuses Bronze and embeddings."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from tests.conftest import TINY_DATA_ROOT, make_tiny_project, run_kedro
from tests.core.tiny import tiny_backbone
from xai_kedro.core.data.bronze import masks_from_rows, pixels_from_rows
from xai_kedro.pipelines.ingestion.nodes import ingest_images, list_images

pytestmark = pytest.mark.integration

PARAMS = {
    "storage_size": 32,
    "min_side": 16,
    "max_pixels": 10_000_000,
    "mask_foreground_values": [1, 3, 255],
    "max_file_bytes": 10_000_000,
    "required_splits": ["train", "val", "test"],
    "every_class_in": ["train"],
    "split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
}
NO_PRETRAIN = {"pretrain": {"enabled": False}}


def ingestion_params(source: dict, store: Path) -> dict:
    return {**PARAMS, "source": source, "reuse": {"enabled": True, "dir": str(store)}}


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
    (root / "dogs/copy_of_cat.png").write_bytes(original)  # same bytes, other label
    (root / "cats/gray_copy.png").write_bytes((root / "cats/gray.png").read_bytes())
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
        "cats/rgb.png": "conflicting_label",
        "dogs/copy_of_cat.png": "conflicting_label",
        "cats/gray_copy.png": "duplicate",
    }


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    expected = _hostile_folder(root)
    source = {"kind": "image_folder", "name": "hostile", "root": str(root)}
    params = ingestion_params(source, tmp_path_factory.mktemp("store"))
    listing = list_images(params)
    bronze, quarantine = ingest_images(listing, params, NO_PRETRAIN)
    return expected, bronze.toPandas(), quarantine, listing


def test_broken_files_are_quarantined_with_their_reason(ingested):
    expected, bronze, quarantine, _ = ingested
    reasons = dict(zip(quarantine["source_path"], quarantine["reason"], strict=True))
    assert reasons == expected
    assert quarantine["message"].str.len().gt(0).all()
    messages = quarantine.set_index("source_path")["message"]
    assert "cats/gray.png" in messages["cats/gray_copy.png"]
    assert "cats/rgb.png (cats)" in messages["dogs/copy_of_cat.png"]


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
    params = ingestion_params(source, tmp_path / "fresh_store")  # a full second run, no reuse
    again, _ = ingest_images(list_images(params), params, NO_PRETRAIN)
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
    params = ingestion_params(source, tmp_path / "store")
    bronze, quarantine = ingest_images(list_images(params), params, {"pretrain": {"enabled": True}})
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


@pytest.mark.slow
def test_paper_env_without_its_dataset_says_what_is_missing_in_one_line(tmp_path, monkeypatch):
    project = make_tiny_project(tmp_path / "paper_without_data")
    # Without DINOv2 in the Hugging Face cache the backbone check (before any file is listed)
    # ends the run first, in one line naming backbone.source ...
    with pytest.raises(SystemExit) as stop:
        run_kedro(project, monkeypatch, pipelines=["ingestion"], env="paper")
    assert str(stop.value.code).startswith("backbone.source: 'facebook/dinov2-base'")
    assert "\n" not in str(stop.value.code)
    # ... and with a local stand-in checkpoint it is the missing dataset that is named.
    tiny_backbone().save_pretrained(str(project / "dinov2_stand_in"))
    shutil.copytree(project / "conf/paper", project / "conf/paper_stand_in")
    params_file = project / "conf/paper_stand_in/parameters.yml"
    params = yaml.safe_load(params_file.read_text())
    params["backbone"].update(source="dinov2_stand_in", input_size=32)
    params_file.write_text(yaml.safe_dump(params))
    expected = (project / "data/01_raw/oxford-iiit-pet").resolve()
    with pytest.raises(SystemExit) as stop:
        run_kedro(project, monkeypatch, pipelines=["ingestion"], env="paper_stand_in")
    message = str(stop.value.code)
    assert "\n" not in message and str(expected) in message and "docs/data.md" in message
    cli = subprocess.run(
        [str(Path(sys.executable).with_name("kedro")), "run", "--env", "paper_stand_in"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode != 0
    assert "Traceback" not in cli.stderr + cli.stdout
    assert message in cli.stderr.splitlines()


@pytest.mark.slow
def test_second_kedro_run_reuses_bronze_and_embeddings(spark, tmp_path, monkeypatch, caplog):
    project = make_tiny_project(tmp_path / "rerun")
    run_kedro(project, monkeypatch, pipelines=["ingestion"])
    data = project / TINY_DATA_ROOT / "02_bronze"

    def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
        bronze = spark.read.parquet(str(data / "bronze_images.parquet")).toPandas()
        embeddings = spark.read.parquet(str(data / "bronze_embeddings.parquet")).toPandas()
        return (
            bronze.sort_values("image_id", ignore_index=True),
            embeddings.sort_values("image_id", ignore_index=True),
        )

    bronze_before, embeddings_before = tables()
    with caplog.at_level("INFO"):
        run_kedro(project, monkeypatch, pipelines=["ingestion"])
    assert "Bronze is up to date" in caplog.text and "no image decoded" in caplog.text
    assert "Embeddings are up to date" in caplog.text and "no image embedded" in caplog.text
    bronze_after, embeddings_after = tables()
    pd.testing.assert_frame_equal(bronze_before, bronze_after)
    assert embeddings_before["image_id"].tolist() == embeddings_after["image_id"].tolist()
    assert all(
        np.array_equal(a, b)
        for a, b in zip(embeddings_before["embedding"], embeddings_after["embedding"], strict=True)
    )
