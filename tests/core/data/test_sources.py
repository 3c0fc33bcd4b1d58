"""Listing the synthetic, Oxford-IIIT Pet and image-folder sources (core.sources)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import xai_kedro.core.data.sources as sources
from xai_kedro.core.common.errors import UserError
from xai_kedro.core.data.sources import (
    SOURCE_COLUMNS,
    EmptySourceError,
    SourceNotAFolderError,
    SourceNotFoundError,
    breed_name,
    image_id,
    known_sources,
    list_source,
    register_source,
    validate_source,
    with_file_stats,
)
from xai_kedro.core.data.synthetic import SyntheticConfig, write_synthetic_dataset


def write_jpg(path: Path, colour=(200, 10, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 32), colour).save(path, "JPEG")


def write_trimap(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 40), 2, dtype=np.uint8)).save(path)


LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID\n"
    "#ID: 1:37 Class ids\n"
    "#SPECIES: 1:Cat 2:Dog\n"
    "#BREED ID: 1-25:Cat 1:12:Dog\n"
)


@pytest.fixture
def oxford(tmp_path) -> Path:
    """A small stand-in of the official layout: 3 breeds, splits, trimaps and odd files."""
    root = tmp_path / "oxford-iiit-pet"
    labelled = {
        "Abyssinian_1": 1,
        "Abyssinian_100": 1,
        "american_bulldog_10": 2,
        "american_bulldog_11": 2,
        "Bengal_3": 6,
    }
    for stem in labelled:
        write_jpg(root / "images" / f"{stem}.jpg")
    write_jpg(root / "images" / "mystery_cat_5.jpg")  # not in list.txt
    (root / "images" / "Abyssinian_101.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    (root / "images" / ".DS_Store").write_bytes(b"\0\0")
    lines = [f"{stem} {cid} 1 1" for stem, cid in labelled.items()] + ["Bengal_99 6 1 6"]
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "list.txt").write_text(LIST_HEADER + "\n".join(lines) + "\n")
    (ann / "trainval.txt").write_text(
        "Abyssinian_1 1 1 1\namerican_bulldog_10 2 2 1\nBengal_3 6 1 6\n"
    )
    (ann / "test.txt").write_text("Abyssinian_100 1 1 1\namerican_bulldog_11 2 2 1\n")
    for stem in (
        "Abyssinian_1",
        "Abyssinian_100",
        "american_bulldog_10",
        "Bengal_3",
        "mystery_cat_5",
    ):
        write_trimap(ann / "trimaps" / f"{stem}.png")
    (ann / "trimaps" / "._Abyssinian_1.png").write_bytes(b"apple double")
    return root


def by_rel(df: pd.DataFrame) -> dict[str, dict]:
    return {r["rel_path"]: r for r in df.to_dict("records")}


# ------------------------------------------------------------------ image ids
def test_image_id_is_stable_and_posix():
    expected = hashlib.sha1(b"oxford_pet:images/Bengal_3.jpg").hexdigest()[:16]
    assert image_id("oxford_pet", "images/Bengal_3.jpg") == expected
    assert image_id("oxford_pet", Path("images") / "Bengal_3.jpg") == expected
    assert image_id("oxford_pet", str(PureWindowsPath("images", "Bengal_3.jpg"))) == expected
    assert image_id("other", "images/Bengal_3.jpg") != expected
    assert len(expected) == 16 and int(expected, 16) >= 0


# ------------------------------------------------------------------ oxford
def test_oxford_labels_names_splits_masks_problems(oxford):
    df = list_source("oxford_pet", oxford)
    assert list(df.columns) == list(SOURCE_COLUMNS)
    assert list(df["rel_path"]) == sorted(df["rel_path"])
    rows = by_rel(df)
    assert ".DS_Store" not in " ".join(rows)

    aby = rows["images/Abyssinian_1.jpg"]
    assert aby["label"] == 0 and aby["label_name"] == "Abyssinian" and aby["split"] == "trainval"
    assert aby["path"] == (oxford.resolve() / "images/Abyssinian_1.jpg").as_posix()
    assert (
        aby["mask_path"] == (oxford.resolve() / "annotations/trimaps/Abyssinian_1.png").as_posix()
    )
    assert aby["problem"] is None
    assert aby["image_id"] == image_id("oxford_pet", "images/Abyssinian_1.jpg")

    assert rows["images/Abyssinian_100.jpg"]["split"] == "test"
    assert rows["images/Abyssinian_100.jpg"]["label_name"] == "Abyssinian"
    bulldog = rows["images/american_bulldog_10.jpg"]
    assert (bulldog["label"], bulldog["label_name"]) == (1, "american_bulldog")
    assert rows["images/Bengal_3.jpg"]["label"] == 5  # CLASS-ID 6 -> label 5

    no_trimap = rows["images/american_bulldog_11.jpg"]
    assert no_trimap["mask_path"] is None and no_trimap["problem"] == "mask_missing"
    assert no_trimap["split"] == "test" and no_trimap["label"] == 1

    mystery = rows["images/mystery_cat_5.jpg"]
    assert (mystery["label"], mystery["label_name"], mystery["problem"]) == (-1, None, "no_label")

    mat = rows["images/Abyssinian_101.mat"]
    assert mat["problem"] == "unsupported_extension" and mat["label"] == -1

    ghost = rows["images/Bengal_99.jpg"]
    assert ghost["problem"] == "file_missing" and ghost["label"] == 5
    assert ghost["split"] is None
    assert df["label"].dtype == np.int64
    assert len(df) == 8


def test_oxford_is_deterministic(oxford):
    a = list_source("oxford_pet", oxford)
    b = list_source("oxford_pet", str(oxford))
    pd.testing.assert_frame_equal(a, b)


def test_oxford_masks_optional(oxford):
    df = list_source("oxford_pet", oxford, require_masks=False)
    assert by_rel(df)["images/american_bulldog_11.jpg"]["problem"] is None
    shutil.rmtree(oxford / "annotations" / "trimaps")
    df = list_source("oxford_pet", oxford)
    assert df["mask_path"].isna().all()
    assert "mask_missing" not in set(df["problem"].dropna())


def test_oxford_without_split_files(oxford):
    (oxford / "annotations" / "trainval.txt").unlink()
    (oxford / "annotations" / "test.txt").unlink()
    df = list_source("oxford_pet", oxford)
    assert df["split"].isna().all()
    assert by_rel(df)["images/Bengal_3.jpg"]["label"] == 5


def test_oxford_conflicts(oxford):
    ann = oxford / "annotations"
    (ann / "test.txt").write_text("Abyssinian_1 1 1 1\nBengal_3 7 1 7\n")
    rows = by_rel(list_source("oxford_pet", oxford))
    assert rows["images/Abyssinian_1.jpg"]["problem"] == "split_conflict"
    assert rows["images/Bengal_3.jpg"]["problem"] == "label_conflict"


def test_oxford_extra_extensions(oxford):
    write_jpg(oxford / "images" / "Bengal_4.JPG")
    write_trimap(oxford / "annotations" / "trimaps" / "Bengal_4.png")
    with (oxford / "annotations" / "list.txt").open("a") as fh:
        fh.write("Bengal_4 6 1 6\n")
    rows = by_rel(list_source("oxford_pet", oxford))
    assert rows["images/Bengal_4.JPG"]["problem"] is None  # extension check ignores case
    rows = by_rel(list_source("oxford_pet", oxford, image_extensions=(".jpg", ".mat")))
    assert rows["images/Abyssinian_101.mat"]["problem"] == "no_label"


def test_oxford_missing_files_have_clear_messages(oxford, tmp_path):
    (oxford / "annotations" / "list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list.txt"):
        list_source("oxford_pet", oxford)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="images"):
        list_source("oxford_pet", empty)


def test_oxford_bad_annotation_line(oxford):
    (oxford / "annotations" / "list.txt").write_text(LIST_HEADER + "Bengal_3 six 1 6\n")
    with pytest.raises(ValueError, match=r"list.txt:5"):
        list_source("oxford_pet", oxford)


@pytest.mark.parametrize(
    ("stem", "breed"),
    [
        ("american_bulldog_10", "american_bulldog"),
        ("Abyssinian_100", "Abyssinian"),
        ("staffordshire_bull_terrier_2", "staffordshire_bull_terrier"),
        ("Bengal", "Bengal"),
    ],
)
def test_breed_name(stem, breed):
    assert breed_name(stem) == breed


# ------------------------------------------------------------------ image folder
def test_image_folder(tmp_path):
    root = tmp_path / "folder"
    write_jpg(root / "dogs" / "c.jpeg")
    write_jpg(root / "cats" / "a.jpg")
    write_jpg(root / "cats" / "sub" / "deeper" / "b.png")
    (root / "dogs" / "notes.txt").write_text("kept: the decoder rejects it with a reason")
    (root / "dogs" / ".hidden.jpg").write_bytes(b"x")
    (root / "cats" / ".cache").mkdir()
    (root / "cats" / ".cache" / "x.jpg").write_bytes(b"x")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "README.txt").write_text("loose files have no class")
    df = list_source("image_folder", root)
    assert list(df["rel_path"]) == [
        "cats/a.jpg",
        "cats/sub/deeper/b.png",
        "dogs/c.jpeg",
        "dogs/notes.txt",
    ]
    assert list(df["label"]) == [0, 0, 1, 1]
    assert list(df["label_name"]) == ["cats", "cats", "dogs", "dogs"]
    assert df["split"].isna().all() and df["mask_path"].isna().all() and df["problem"].isna().all()
    assert df.loc[0, "image_id"] == image_id("image_folder", "cats/a.jpg")
    named = list_source("image_folder", root, source_name="pets")
    assert named.loc[0, "image_id"] == image_id("pets", "cats/a.jpg")


def test_image_folder_without_classes(tmp_path):
    (tmp_path / "only.jpg").write_bytes(b"x")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")  # not a folder: no class either
    with pytest.raises(EmptySourceError, match="no class sub-folders") as info:
        list_source("image_folder", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "\n" not in message
    assert str(tmp_path.resolve()) in message and "0 folders, 2 files directly under it" in message
    assert "docs/data.md" in message


def test_image_folder_with_only_empty_classes(tmp_path, caplog):
    for name in ("a", "b", "c", "d"):
        (tmp_path / name / "sub").mkdir(parents=True)
    (tmp_path / "a" / ".hidden.jpg").write_bytes(b"x")
    with (
        caplog.at_level(logging.WARNING, logger="xai_kedro.core.data.sources"),
        pytest.raises(EmptySourceError) as info,
    ):
        list_source("image_folder", tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path.resolve()) in message
    assert "lists no file: its 4 class sub-folders (a, b, c, ...) hold 0 files" in message
    assert caplog.text.count("is empty") == 4


def test_image_folder_lists_dangling_symlinks_and_special_files(tmp_path, caplog):
    write_jpg(tmp_path / "cats" / "a.jpg")
    (tmp_path / "cats" / "gone.jpg").symlink_to(tmp_path / "cats" / "deleted.jpg")
    (tmp_path / "cats" / "to_a.jpg").symlink_to(tmp_path / "cats" / "a.jpg")
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "loop.jpg").symlink_to(tmp_path / "dogs" / "loop.jpg")
    os.mkfifo(tmp_path / "dogs" / "pipe.jpg")
    (tmp_path / "dogs" / "cats_too").symlink_to(tmp_path / "cats", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="xai_kedro.core.data.sources"):
        df = list_source("image_folder", tmp_path)
    assert dict(zip(df["rel_path"], df["problem"], strict=True)) == {
        "cats/a.jpg": None,
        "cats/gone.jpg": "dangling_symlink",
        "cats/to_a.jpg": None,
        "dogs/loop.jpg": "dangling_symlink",
        "dogs/pipe.jpg": "not_a_file",
    }
    assert "not following 1 symlinked folders" in caplog.text and "dogs/cats_too" in caplog.text
    stats = with_file_stats(df, max_file_bytes=10**6, limit_name="limit")
    assert list(stats["problem"]) == list(df["problem"])  # the listing's flags are kept
    flagged = stats["problem"].notna()
    assert stats.loc[flagged, "file_hash"].isna().all()  # never opened (a FIFO would block)
    assert stats.loc[flagged, "size_bytes"].isna().all()


# ------------------------------------------------------------------ synthetic
def test_synthetic_source(tmp_path):
    cfg = SyntheticConfig(
        num_classes=3, num_textures=3, image_size=32, images_per_class={"train": 2, "test": 1}
    )
    manifest = write_synthetic_dataset(tmp_path, cfg)
    df = list_source("synthetic", tmp_path)
    assert len(df) == len(manifest) == 9
    assert list(df["rel_path"]) == sorted(manifest["rel_path"])
    assert df["problem"].isna().all()
    assert set(df["split"]) == {"train", "test"}
    merged = df.merge(manifest, on="rel_path", suffixes=("", "_m"))
    assert (merged["label"] == merged["label_m"]).all()
    assert all(Path(p).is_file() for p in df["mask_path"])

    first = df.iloc[0]
    Path(first["mask_path"]).unlink()
    Path(df.iloc[1]["path"]).unlink()
    rows = by_rel(list_source("synthetic", tmp_path))
    assert rows[first["rel_path"]]["problem"] == "mask_missing"
    assert rows[first["rel_path"]]["mask_path"] is None
    assert rows[df.iloc[1]["rel_path"]]["problem"] == "file_missing"


def test_synthetic_without_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_synthetic_dataset"):
        list_source("synthetic", tmp_path)


# ------------------------------------------------------------------ dispatch
def test_unknown_kind_lists_known_ones(tmp_path):
    with pytest.raises(ValueError) as info:
        list_source("imagenet", tmp_path)
    assert known_sources() == ("image_folder", "oxford_pet", "synthetic")
    for kind in known_sources():
        assert kind in str(info.value)
    assert "ingestion.source.kind" in str(info.value)


def test_a_registered_source_is_listed_by_kind(tmp_path, request):
    request.addfinalizer(lambda: sources.SOURCES.unregister("one_file"))

    @register_source("one_file")
    def list_one_file(root: Path, source_name: str = "one_file") -> pd.DataFrame:
        return sources._frame([sources._row(root, "a.png", source_name, 0, "a", None, None, None)])

    assert "one_file" in known_sources()
    df = list_source("one_file", tmp_path)
    assert list(df.columns) == list(SOURCE_COLUMNS)
    assert df.loc[0, "image_id"] == image_id("one_file", "a.png")
    with pytest.raises(ValueError, match="registered twice"):
        register_source("one_file")(list_one_file)


def test_validate_source_names_the_setting_and_the_missing_path(tmp_path):
    missing = tmp_path / "data/01_raw/oxford-iiit-pet"
    with pytest.raises(SourceNotFoundError) as info:
        validate_source({"kind": "oxford_pet", "root": str(missing)})
    message = str(info.value)
    assert "\n" not in message and str(missing) in message and "docs/data.md" in message
    with pytest.raises(ValueError, match=r"ingestion\.source\.root must be set"):
        validate_source({"kind": "image_folder"})
    with pytest.raises(ValueError, match=r"known: .*image_folder"):
        validate_source({"kind": "imagenet", "root": str(tmp_path)})
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        validate_source({"kind": "image_folder", "root": str(tmp_path / "file")})
    validate_source({"kind": "synthetic", "root": str(tmp_path / "generated/later")})


def test_file_stats_flag_large_files_without_reading_them(tmp_path, monkeypatch):
    root = tmp_path / "folder"
    write_jpg(root / "cats" / "a.jpg")
    write_jpg(root / "cats" / "b.jpg", colour=(1, 2, 3))
    with open(root / "cats" / "huge.jpg", "wb") as handle:
        handle.truncate(3 * 2**30)  # sparse
    (root / "dogs").mkdir()
    (root / "dogs" / "gone.jpg").write_bytes(b"x")
    listing = list_source("image_folder", root)
    (root / "dogs" / "gone.jpg").unlink()
    read: list[str] = []
    original = sources.sha256_file
    monkeypatch.setattr(sources, "sha256_file", lambda p: read.append(p.name) or original(p))
    stats = with_file_stats(listing, 1 << 20, "ingestion.max_file_bytes").set_index("rel_path")
    assert sorted(read) == ["a.jpg", "b.jpg"]
    huge = stats.loc["cats/huge.jpg"]
    assert huge["problem"] == "too_large" and huge["file_hash"] is None
    assert huge["problem_message"] == (
        f"file is {3 * 2**30} bytes > ingestion.max_file_bytes={1 << 20}; not read"
    )
    a = stats.loc["cats/a.jpg"]
    assert a["file_hash"] == hashlib.sha256((root / "cats" / "a.jpg").read_bytes()).hexdigest()
    assert a["size_bytes"] == (root / "cats" / "a.jpg").stat().st_size and a["problem"] is None
    assert stats.loc["dogs/gone.jpg", "size_bytes"] == -1
    assert stats.loc["dogs/gone.jpg", "problem"] is None  # ingestion says "missing"
    assert list(listing.columns) == list(SOURCE_COLUMNS)  # the listing itself is unchanged


def test_file_stats_flag_a_large_mask(oxford):
    listing = list_source("oxford_pet", oxford)
    usable = listing[listing["mask_path"].notna() & listing["problem"].isna()]
    mask, image = Path(usable["mask_path"].iloc[0]), Path(usable["path"].iloc[0])
    limit = image.stat().st_size
    with open(mask, "ab") as handle:  # now larger than its image and the limit
        handle.write(b"\0" * (limit + 1))
    stats = with_file_stats(usable, limit, "limit").set_index("rel_path")
    row = stats.loc[usable["rel_path"].iloc[0]]
    assert row["problem"] == "mask_too_large" and row["problem_message"].startswith("mask file")


def test_missing_root(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        list_source("image_folder", tmp_path / "nope")


def test_unknown_option_is_an_error(oxford):
    with pytest.raises(TypeError):
        list_source("oxford_pet", oxford, no_such_option=True)


def test_a_root_that_is_a_file_is_a_one_line_user_error(tmp_path):
    root = tmp_path / "not_a_folder.png"
    root.write_bytes(b"x")
    with pytest.raises(SourceNotAFolderError, match="is not a folder") as error:
        validate_source({"kind": "image_folder", "root": str(root)})
    assert isinstance(error.value, UserError) and isinstance(error.value, NotADirectoryError)
