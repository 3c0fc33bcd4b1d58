"""Ingestion at the edges, through Spark: empty and all-broken sources end the run in one line,
a file too large for Spark is quarantined unread (and the cap is logged), dangling symlinks and
special files are quarantined, conflicting duplicates, early parameter checks, and reuse of
Bronze and embeddings when nothing changed."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import xai_kedro.core.data.sources as sources
import xai_kedro.spark.ingestion as spark_ingestion
import xai_kedro.spark.reuse as spark_reuse
from xai_kedro.core.data.bronze import IngestionError
from xai_kedro.pipelines.ingestion.nodes import ingest_images, list_images
from xai_kedro.spark.ingestion import SPARK_BINARY_LIMIT
from xai_kedro.spark.reuse import ReuseSettings, embed_with_reuse

pytestmark = pytest.mark.integration

NO_PRETRAIN = {"pretrain": {"enabled": False}}
SPARSE_SIZE = 3 * 2**30


def params(root: Path, store: Path, **overrides) -> dict:
    base = {
        "source": {"kind": "image_folder", "name": "edges", "root": str(root)},
        "storage_size": 32,
        "min_side": 16,
        "max_pixels": 10_000_000,
        "mask_foreground_values": [1, 3, 255],
        "max_file_bytes": 1_000_000,
        "required_splits": ["train", "val", "test"],
        "every_class_in": ["train"],
        "split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
        "reuse": {"enabled": True, "dir": str(store)},
    }
    return {**base, **overrides}


def png(path: Path, seed: int, size: tuple[int, int] = (40, 36)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buffer, "PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def good_folder(root: Path, per_class: int = 4) -> None:
    for label, name in enumerate(("cats", "dogs")):
        for index in range(per_class):
            png(root / name / f"{index}.png", seed=10 * label + index)


def run(ingestion: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    bronze, quarantine = ingest_images(list_images(ingestion), ingestion, NO_PRETRAIN)
    return bronze.toPandas().sort_values("image_id", ignore_index=True), quarantine


def last_spark_job(spark) -> int:
    return max(spark.sparkContext.statusTracker().getJobIdsForGroup(), default=-1)


def test_empty_source_ends_the_run_in_one_line_naming_the_root(spark, tmp_path):
    root = tmp_path / "empty"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    ingestion = params(root, tmp_path / "store")
    jobs = last_spark_job(spark)
    with pytest.raises(SystemExit) as stop:
        run(ingestion)
    message = str(stop.value.code)
    assert "\n" not in message and str(root) in message and "lists no file" in message
    assert "2 class sub-folders (cats, dogs) hold 0 files" in message
    assert last_spark_job(spark) == jobs  # found by the listing, before any Spark work
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "loose.png").write_bytes(b"x")
    with pytest.raises(SystemExit) as stop:
        list_images(params(bare, tmp_path / "store"))
    message = str(stop.value.code)
    assert "\n" not in message and str(bare) in message and "no class sub-folders" in message
    assert "0 folders, 1 files directly under it" in message


def test_a_listing_without_files_fails_in_ingestion_naming_the_root(spark, tmp_path):
    root = tmp_path / "nothing"
    root.mkdir()
    listing = pd.DataFrame({c: pd.Series(dtype=object) for c in sources.SOURCE_COLUMNS})
    ingestion = params(root, tmp_path / "store")
    settings = spark_ingestion.IngestionSettings.from_params(ingestion)
    with pytest.raises(IngestionError, match="no usable image") as error:
        spark_ingestion.ingest(spark, listing, ingestion["source"], settings)
    assert str(root) in str(error.value) and "lists no file" in str(error.value)


def test_all_broken_source_fails_with_quarantine_counts(spark, tmp_path):
    root = tmp_path / "broken"
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / "cats/notes.jpg").write_text("not an image")
    data = png(root / "dogs/whole.png", seed=1)
    (root / "dogs/whole.png").write_bytes(data[: len(data) // 2])
    (root / "dogs/empty.png").write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        run(params(root, tmp_path / "store"))
    message = str(stop.value.code)
    assert "\n" not in message and str(root) in message and "no usable image" in message
    for count in ("not_an_image 1", "truncated 1", "empty 1"):
        assert count in message


def test_dangling_symlinks_and_special_files_are_quarantined(spark, tmp_path):
    root = tmp_path / "links"
    good_folder(root)
    (root / "cats/gone.png").symlink_to(root / "cats/nowhere.png")
    (root / "dogs/loop.png").symlink_to(root / "dogs/loop.png")
    os.mkfifo(root / "dogs/pipe.png")  # reading it would block the decoder forever
    (root / "dogs/linked").symlink_to(root / "cats", target_is_directory=True)
    listing = list_images(params(root, tmp_path / "store"))
    bronze, quarantine = run(params(root, tmp_path / "store"))
    reasons = dict(zip(quarantine["source_path"], quarantine["reason"], strict=True))
    assert reasons == {
        "cats/gone.png": "dangling_symlink",
        "dogs/loop.png": "dangling_symlink",
        "dogs/pipe.png": "not_a_file",
    }
    assert "dangling_symlink" in quarantine.set_index("source_path").loc["cats/gone.png", "message"]
    # Every listed path is in exactly one of the two tables.
    assert sorted([*bronze["source_path"], *quarantine["source_path"]]) == sorted(
        listing["rel_path"]
    )


def test_file_too_large_for_spark_is_quarantined_unread(spark, tmp_path, monkeypatch, caplog):
    root = tmp_path / "sparse"
    good_folder(root)
    huge = root / "dogs" / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(SPARSE_SIZE)  # sparse: 3 GiB on paper, no disk used
    hashed: list[str] = []
    original = sources.sha256_file

    def recording(path, *args, **kwargs):
        hashed.append(Path(path).name)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(sources, "sha256_file", recording)
    ingestion = params(root, tmp_path / "store", max_file_bytes=2**40)  # capped at Spark's limit
    with caplog.at_level(logging.WARNING, logger="xai_kedro.spark.ingestion"):
        bronze, quarantine = run(ingestion)
    capped = [r.getMessage() for r in caplog.records if "capped" in r.getMessage()]
    assert len(capped) == 1 and str(2**40) in capped[0] and str(SPARK_BINARY_LIMIT) in capped[0]
    assert len(bronze) == 8 and "dogs/huge.jpg" not in set(bronze["source_path"])
    row = quarantine.set_index("source_path").loc["dogs/huge.jpg"]
    assert row["reason"] == "too_large"
    assert str(SPARSE_SIZE) in row["message"] and str(SPARK_BINARY_LIMIT) in row["message"]
    assert "huge.jpg" not in hashed and len(hashed) == 8


def test_duplicates_with_conflicting_labels_are_all_quarantined(spark, tmp_path):
    root = tmp_path / "dups"
    good_folder(root)
    shared = (root / "cats/0.png").read_bytes()
    (root / "dogs/looks_like_a_cat.png").write_bytes(shared)
    (root / "dogs/0_again.png").write_bytes((root / "dogs/0.png").read_bytes())
    bronze, quarantine = run(params(root, tmp_path / "store"))
    reasons = dict(zip(quarantine["source_path"], quarantine["reason"], strict=True))
    assert reasons == {
        "cats/0.png": "conflicting_label",
        "dogs/looks_like_a_cat.png": "conflicting_label",
        "dogs/0_again.png": "duplicate",
    }
    message = quarantine.set_index("source_path").loc["cats/0.png", "message"]
    assert "cats/0.png (cats)" in message and "dogs/looks_like_a_cat.png (dogs)" in message
    assert set(reasons).isdisjoint(bronze["source_path"])
    assert "dogs/0.png" in set(bronze["source_path"])


def test_bad_split_fractions_are_rejected_before_spark_work(spark, tmp_path):
    root = tmp_path / "fractions"
    good_folder(root)
    good = params(root, tmp_path / "store")
    listing = list_images(good)
    bad = {**good, "split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.1}, "seed": 0}}
    jobs = last_spark_job(spark)
    with pytest.raises(ValueError, match=r"ingestion\.split\.fractions must sum to 1"):
        ingest_images(listing, bad, NO_PRETRAIN)
    with pytest.raises(ValueError, match=r"ingestion\.split\.fractions"):
        list_images(bad)
    with pytest.raises(ValueError, match=r"ingestion\.storage_size"):
        ingest_images(listing, {**good, "storage_size": 0}, NO_PRETRAIN)
    with pytest.raises(ValueError, match=r"ingestion\.source\.kind.*image_folder"):
        ingest_images(listing, {**good, "source": {**good["source"], "kind": "nope"}}, {})
    assert last_spark_job(spark) == jobs
    assert not (tmp_path / "store").exists()


def test_required_pretrain_split_is_checked_in_ingestion(spark, tmp_path):
    root = tmp_path / "no_pretrain"
    good_folder(root)
    ingestion = params(root, tmp_path / "store")
    with pytest.raises(SystemExit, match=r"split 'pretrain' has no image under .*no_pretrain"):
        ingest_images(list_images(ingestion), ingestion, {"pretrain": {"enabled": True}})


def test_unchanged_inputs_reuse_bronze_and_a_changed_file_redoes_it(
    spark, tmp_path, monkeypatch, caplog
):
    root = tmp_path / "reuse"
    good_folder(root, per_class=5)
    (root / "cats/broken.png").write_text("not an image")
    ingestion = params(root, tmp_path / "store")
    with caplog.at_level(logging.INFO, logger="xai_kedro"):
        first, first_quarantine = run(ingestion)
    assert "no previous run recorded" in caplog.text

    def no_decoding(**_):
        raise AssertionError("the decoder must not run on unchanged inputs")

    with monkeypatch.context() as patched, caplog.at_level(logging.INFO, logger="xai_kedro"):
        patched.setattr(spark_ingestion, "make_decoder", no_decoding)
        caplog.clear()
        second, second_quarantine = run(ingestion)
    assert "Bronze is up to date" in caplog.text and "no image decoded" in caplog.text
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first_quarantine, second_quarantine)

    png(root / "dogs/2.png", seed=99)  # same path, new content
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xai_kedro"):
        third, third_quarantine = run(ingestion)
    assert "the listed files changed: 1 files changed (dogs/2.png)" in caplog.text
    full_store = {"enabled": False, "dir": str(tmp_path / "full")}
    full, full_quarantine = run({**ingestion, "reuse": full_store})
    pd.testing.assert_frame_equal(third, full)
    pd.testing.assert_frame_equal(third_quarantine, full_quarantine)
    changed = third.set_index("source_path")["content_hash"]
    assert changed["dogs/2.png"] != first.set_index("source_path")["content_hash"]["dogs/2.png"]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xai_kedro"):
        run({**ingestion, "storage_size": 24})
    assert "settings changed: decode" in caplog.text


def test_embeddings_are_reused_until_the_backbone_changes(spark, tmp_path, monkeypatch, caplog):
    from tests.core.tiny import tiny_backbone

    root = tmp_path / "embed"
    good_folder(root, per_class=3)
    ingestion = params(root, tmp_path / "store")
    bronze, _ = ingest_images(list_images(ingestion), ingestion, NO_PRETRAIN)
    weights = tmp_path / "backbone"
    tiny_backbone(seed=0).save_pretrained(str(weights))
    manifest = {"source": str(weights), "weights_dir": str(weights)}
    manifest |= {"local_files_only": True, "input_size": 32}
    reuse = ReuseSettings.from_params(ingestion["reuse"])

    def embed(key: str) -> pd.DataFrame:
        frame = embed_with_reuse(bronze, manifest, key, 8, "cpu", "cpu", reuse)
        return frame.toPandas().sort_values("image_id", ignore_index=True)

    def no_embedding(*_, **__):
        raise AssertionError("the backbone must not run on unchanged Bronze")

    first = embed("weights-a")
    with monkeypatch.context() as patched, caplog.at_level(logging.INFO, logger="xai_kedro"):
        patched.setattr(spark_reuse, "make_embedder", no_embedding)
        second = embed("weights-a")
    assert "Embeddings are up to date" in caplog.text
    assert first["image_id"].tolist() == second["image_id"].tolist()
    pairs = zip(first["embedding"], second["embedding"], strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xai_kedro"):
        third = embed("weights-b")
    assert "Embedding every Bronze image: its inputs changed" in caplog.text
    assert len(third) == len(first) == 6
