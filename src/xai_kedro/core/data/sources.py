"""List the inputs of any supported source as one DataFrame (the Bronze stage's to-do list).

Every source kind produces the same columns (:data:`SOURCE_COLUMNS`), one row per file, sorted by
``rel_path``. Files the ingestion must not use are still listed, with a reason in ``problem``, so
that they end up in ``bronze_quarantine`` instead of disappearing:

* ``no_label`` -- an image the annotations do not label.
* ``mask_missing`` -- masks are expected for this source but this image has none.
* ``file_missing`` -- an annotated/manifest entry whose file is not on disk.
* ``unsupported_extension`` -- (Oxford) a file in ``images/`` that is not an image file of the
  official format (the real dataset ships a few ``.mat`` files there).
* ``label_conflict`` / ``split_conflict`` -- (Oxford) the annotation files disagree about an image.
* ``dangling_symlink`` / ``not_a_file`` -- (image folder) a symlink to nothing, or a FIFO, socket
  or device (reading it could block).

Sources live in one registry: a listing function decorated with ``@register_source("kind")``
becomes ``ingestion.source.kind: kind`` (adding a source touches that function, its config and
its test). :func:`list_source` looks the kind up; an unknown kind names the known ones.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from xai_kedro.core.common.errors import UserError
from xai_kedro.core.common.hashing import sha256_file
from xai_kedro.core.common.registry import Registry
from xai_kedro.core.common.settings import SettingsError

logger = logging.getLogger(__name__)

DATA_DOCS = "docs/data.md"
SOURCE_COLUMNS: tuple[str, ...] = (
    "path",
    "rel_path",
    "image_id",
    "label",
    "label_name",
    "split",
    "mask_path",
    "problem",
)
OXFORD_IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg",)
_IMAGE_ID_HEX = 16
_TRAILING_NUMBER = re.compile(r"_\d+$")


class SourceNotFoundError(UserError, FileNotFoundError):
    """A source's root or one of its required files is not on disk (one line, with the fix)."""

    def __init__(self, kind: str, missing: Path, what: str) -> None:
        super().__init__(
            f"ingestion.source ({kind}): {what} {missing} does not exist; "
            f"see {DATA_DOCS} for where to put the data"
        )
        self.kind = kind
        self.missing = missing


class SourceNotAFolderError(UserError, NotADirectoryError):
    """The configured source root is a file, not a folder."""


class EmptySourceError(UserError, FileNotFoundError):
    """A source root that is there but holds nothing to ingest (one line, with the counts)."""

    def __init__(self, kind: str, root: Path, found: str) -> None:
        super().__init__(f"ingestion.source ({kind}): {root} {found}; see {DATA_DOCS}")
        self.kind = kind
        self.root = root


Lister = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class SourceSpec:
    """One registered source kind: its listing function and whether ingestion writes the root."""

    kind: str
    lister: Lister
    generated: bool


SOURCES: Registry[SourceSpec] = Registry("source kind", setting="ingestion.source.kind")


def register_source(kind: str, *, generated: bool = False) -> Callable[[Lister], Lister]:
    """Register ``lister(root: Path, source_name=..., **options) -> DataFrame`` as ``kind``.

    ``generated``: the pipeline writes this source's files itself (its root need not exist yet).
    """

    def add(lister: Lister) -> Lister:
        SOURCES.register(kind, SourceSpec(kind, lister, generated))
        return lister

    return add


def known_sources() -> tuple[str, ...]:
    """The registered source kinds, sorted."""
    return tuple(sorted(SOURCES.names()))


def source_spec(kind: str) -> SourceSpec:
    """The registry entry of ``kind``; an unknown kind is an error naming the known ones."""
    return SOURCES.get(kind)


def validate_source(source: Mapping[str, Any]) -> None:
    """Check ``ingestion.source`` on the driver before any work: a known kind, a root that exists
    (unless the source generates it) and is a folder."""
    for key in ("kind", "root"):
        if not source.get(key):
            raise SettingsError(f"ingestion.source.{key} must be set")
    spec = source_spec(str(source["kind"]))
    root = Path(str(source["root"])).expanduser()
    if root.exists() and not root.is_dir():
        raise SourceNotAFolderError(f"ingestion.source.root: {root.resolve()} is not a folder")
    if not spec.generated and not root.is_dir():
        raise SourceNotFoundError(spec.kind, root.resolve(), "the source root")


def image_id(source_name: str, rel_path: str | Path) -> str:
    """Stable id of one input: first 16 hex of sha1(f"{source_name}:{posix rel_path}")."""
    rel = rel_path.as_posix() if isinstance(rel_path, Path) else str(rel_path).replace("\\", "/")
    return hashlib.sha1(f"{source_name}:{rel}".encode()).hexdigest()[:_IMAGE_ID_HEX]


def list_source(kind: str, root: str | Path, **options) -> pd.DataFrame:
    """All inputs of a source as a DataFrame with :data:`SOURCE_COLUMNS`, sorted by ``rel_path``.

    Common option: ``source_name`` (default: ``kind``) -- the namespace of the image ids.
    ``oxford_pet`` also takes ``image_extensions`` and ``require_masks`` (see
    :func:`list_oxford_pet`).
    """
    spec = source_spec(kind)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SourceNotFoundError(kind, root, "the source root")
    return spec.lister(root, **options)


@register_source("synthetic", generated=True)
def list_synthetic(root: Path, source_name: str = "synthetic") -> pd.DataFrame:
    """Rows of ``root/manifest.csv`` written by :func:`xai_kedro.core.data.synthetic.write_synthetic_dataset`."""
    manifest_path = root / "manifest.csv"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"synthetic source: {manifest_path} is missing; generate the dataset first "
            "(xai_kedro.core.data.synthetic.write_synthetic_dataset)"
        )
    manifest = pd.read_csv(manifest_path, keep_default_na=False, dtype={"label": "int64"})
    required = {"rel_path", "mask_rel_path", "label", "label_name", "split"}
    missing = required - set(manifest.columns)
    if missing:
        raise ValueError(f"synthetic source: {manifest_path} lacks columns {sorted(missing)}")
    rows = []
    for rec in manifest.itertuples(index=False):
        path = root / rec.rel_path
        mask = root / rec.mask_rel_path if rec.mask_rel_path else None
        problem = None
        if not path.is_file():
            problem = "file_missing"
        elif mask is None or not mask.is_file():
            problem = "mask_missing"
        rows.append(
            _row(
                root,
                rec.rel_path,
                source_name,
                int(rec.label),
                rec.label_name,
                rec.split,
                mask if mask is not None and mask.is_file() else None,
                problem,
            )
        )
    return _frame(rows)


@register_source("oxford_pet")
def list_oxford_pet(
    root: Path,
    source_name: str = "oxford_pet",
    image_extensions: tuple[str, ...] = OXFORD_IMAGE_EXTENSIONS,
    require_masks: bool | None = None,
) -> pd.DataFrame:
    """The official Oxford-IIIT Pet layout: ``images/*.jpg`` + ``annotations/``.

    Labels come from ``annotations/list.txt`` (CLASS-ID 1..37 -> label 0..36); split "trainval" or
    "test" from the files of those names (optional: without them split is None). The breed name is
    the file stem without its trailing ``_<number>``. Trimaps ``annotations/trimaps/<stem>.png``
    become ``mask_path``; ``require_masks`` (default: True exactly when ``annotations/trimaps``
    exists) marks images without one as ``mask_missing``. Files in ``images/`` whose extension is
    not in ``image_extensions`` are listed with problem ``unsupported_extension``.
    """
    images_dir = root / "images"
    list_path = root / "annotations" / "list.txt"
    if not images_dir.is_dir():
        raise SourceNotFoundError("oxford_pet", images_dir, "the images folder")
    if not list_path.is_file():
        raise SourceNotFoundError("oxford_pet", list_path, "the annotation file")
    extensions = tuple(e.lower() for e in image_extensions)
    trimaps = root / "annotations" / "trimaps"
    if require_masks is None:
        require_masks = trimaps.is_dir()

    labels, splits, conflicts = _oxford_annotations(root, list_path)
    rows = []
    seen: set[str] = set()
    for path in sorted(p for p in images_dir.iterdir() if p.is_file() and not _hidden(p.name)):
        rel = path.relative_to(root).as_posix()
        stem = path.stem
        if path.suffix.lower() not in extensions:
            rows.append(_row(root, rel, source_name, -1, None, None, None, "unsupported_extension"))
            continue
        seen.add(stem)
        rows.append(
            _oxford_row(
                root, rel, stem, source_name, labels, splits, conflicts, trimaps, require_masks
            )
        )
    missing = sorted(set(labels) - seen)
    if missing:
        logger.warning("oxford_pet: %d annotated images are not in %s", len(missing), images_dir)
    for stem in missing:
        rel = f"images/{stem}{extensions[0] if extensions else '.jpg'}"
        row = _oxford_row(
            root, rel, stem, source_name, labels, splits, conflicts, trimaps, require_masks
        )
        row["problem"] = "file_missing"
        rows.append(row)
    return _frame(rows)


@register_source("image_folder")
def list_image_folder(root: Path, source_name: str = "image_folder") -> pd.DataFrame:
    """``root/<class_name>/**/<file>``: label = index of the class folder in sorted order.

    Any extension is listed (the decoder rejects non-images with a reason); hidden files and
    folders are skipped, and so are files directly under ``root`` (they have no class). A
    dangling symlink or a special file (FIFO, socket, device) is listed with problem
    ``dangling_symlink`` / ``not_a_file`` rather than skipped, so every path ends in Bronze or
    the quarantine. No class folder, or no file in any, is an :class:`EmptySourceError`.
    """
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not _hidden(p.name))
    loose = [p.name for p in root.iterdir() if not p.is_dir() and not _hidden(p.name)]
    if not classes:
        raise EmptySourceError(
            "image_folder",
            root,
            f"has no class sub-folders (0 folders, {len(loose)} files directly under it, which "
            "have no class): put each class's images in <root>/<class name>/",
        )
    if loose:
        logger.warning("image_folder: ignoring %d files directly under %s", len(loose), root)
    rows = []
    for label, name in enumerate(classes):
        entries = _folder_entries(root, root / name)
        if not entries:
            logger.warning("image_folder: class folder %s is empty", root / name)
        for path, problem in entries:
            rel = path.relative_to(root).as_posix()
            rows.append(_row(root, rel, source_name, label, name, None, None, problem))
    if not rows:
        shown = ", ".join(classes[:3]) + (", ..." if len(classes) > 3 else "")
        raise EmptySourceError(
            "image_folder",
            root,
            f"lists no file: its {len(classes)} class sub-folders ({shown}) hold 0 files",
        )
    return _frame(rows)


def _folder_entries(root: Path, folder: Path) -> list[tuple[Path, str | None]]:
    """Every entry under ``folder`` that is not a folder or hidden, with the problem that keeps
    it out of Bronze (None for a regular file). Symlinked folders are not followed (logged)."""
    entries: list[tuple[Path, str | None]] = []
    unfollowed = []
    for path in folder.rglob("*"):
        if any(_hidden(part) for part in path.relative_to(root).parts):
            continue
        if path.is_dir():
            if path.is_symlink():
                unfollowed.append(path.relative_to(root).as_posix())
            continue
        problem = None
        if not path.is_file():
            dangling = path.is_symlink() and not path.exists()
            problem = "dangling_symlink" if dangling else "not_a_file"
        entries.append((path, problem))
    if unfollowed:
        logger.warning(
            "image_folder: not following %d symlinked folders under %s: %s",
            len(unfollowed),
            folder,
            ", ".join(sorted(unfollowed)),
        )
    return entries


def with_file_stats(listing: pd.DataFrame, max_file_bytes: int, limit_name: str) -> pd.DataFrame:
    """The listing plus the size and sha256 of every image and mask it will read.

    A file over ``max_file_bytes`` (named ``limit_name`` in the message) is flagged ``too_large``
    (its mask: ``mask_too_large``) from its size alone: it is neither hashed nor read. Rows the
    listing already flagged are not read either. Adds ``size_bytes``, ``file_hash``,
    ``mask_size_bytes``, ``mask_hash`` and ``problem_message`` (a reason for the new flags).
    A file that is gone gets size -1 and no hash (ingestion quarantines it as ``missing``).
    """
    out = listing.copy()
    rows = [_file_stats(row, max_file_bytes, limit_name) for row in out.itertuples(index=False)]
    stats = pd.DataFrame(rows, index=out.index, columns=list(_STAT_COLUMNS))
    for column in _STAT_COLUMNS:
        if column != "problem":  # the listing's own flags stay: those rows are never read
            out[column] = stats[column].astype(object).where(stats[column].notna(), None)
    flagged = stats["problem"].notna()
    out["problem"] = out["problem"].astype(object).where(out["problem"].notna(), None)
    out.loc[flagged, "problem"] = stats.loc[flagged, "problem"]
    return out


_STAT_COLUMNS = (
    "size_bytes", "file_hash", "mask_size_bytes", "mask_hash", "problem", "problem_message",
)  # fmt: skip
_GONE = -1


def _file_stats(row: Any, max_file_bytes: int, limit_name: str) -> dict[str, Any]:
    stats: dict[str, Any] = dict.fromkeys(_STAT_COLUMNS)
    if row.problem is not None and not pd.isna(row.problem):
        return stats
    for prefix, path, reason in (("", row.path, "too_large"), ("mask_", row.mask_path, None)):
        if path is None or pd.isna(path):
            continue
        file = Path(path)
        size = file.stat().st_size if file.is_file() else _GONE
        stats[f"{prefix}size_bytes"] = size
        if size > max_file_bytes:
            stats["problem"] = reason or "mask_too_large"
            stats["problem_message"] = (
                f"{'mask ' if prefix else ''}file is {size} bytes > {limit_name}={max_file_bytes}"
                "; not read"
            )
            return stats
        if size != _GONE:
            stats["file_hash" if not prefix else "mask_hash"] = sha256_file(file)
    return stats


def _oxford_annotations(
    root: Path, list_path: Path
) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """Labels from ``list.txt`` completed by the split files, each image's split, and the images
    whose annotation files disagree (``label_conflict`` / ``split_conflict``)."""
    labels = _read_oxford_list(list_path)
    splits: dict[str, str] = {}
    conflicts: dict[str, str] = {}
    for split_name, file_name in (("trainval", "trainval.txt"), ("test", "test.txt")):
        split_path = root / "annotations" / file_name
        if not split_path.is_file():
            logger.warning("oxford_pet: %s is missing; its images get split None", split_path)
            continue
        for stem, class_id in _read_oxford_list(split_path).items():
            if stem in splits and splits[stem] != split_name:
                conflicts[stem] = "split_conflict"
            splits.setdefault(stem, split_name)
            if stem not in labels:
                labels[stem] = class_id
            elif labels[stem] != class_id:
                conflicts[stem] = "label_conflict"
    return labels, splits, conflicts


def _read_oxford_list(path: Path) -> dict[str, int]:
    """``Image CLASS-ID SPECIES BREED-ID`` lines -> {image stem: label (CLASS-ID - 1)}."""
    labels: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        try:
            class_id = int(parts[1])
        except (IndexError, ValueError) as exc:
            raise ValueError(
                f"{path}:{lineno}: expected 'Image CLASS-ID SPECIES BREED-ID', got {line!r}"
            ) from exc
        if class_id < 1:
            raise ValueError(f"{path}:{lineno}: CLASS-ID must be >= 1, got {class_id}")
        labels[parts[0]] = class_id - 1
    return labels


def _oxford_row(
    root: Path,
    rel: str,
    stem: str,
    source_name: str,
    labels: dict[str, int],
    splits: dict[str, str],
    conflicts: dict[str, str],
    trimaps: Path,
    require_masks: bool,
) -> dict:
    mask = trimaps / f"{stem}.png"
    mask_path = mask if mask.is_file() else None
    if stem not in labels:
        return _row(root, rel, source_name, -1, None, splits.get(stem), mask_path, "no_label")
    problem = conflicts.get(stem)
    if problem is None and require_masks and mask_path is None:
        problem = "mask_missing"
    return _row(
        root, rel, source_name, labels[stem], breed_name(stem), splits.get(stem), mask_path, problem
    )


def breed_name(stem: str) -> str:
    """``american_bulldog_10`` -> ``american_bulldog`` (Oxford file stems are breed_number)."""
    return _TRAILING_NUMBER.sub("", stem)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _row(
    root: Path,
    rel: str,
    source_name: str,
    label: int,
    label_name: str | None,
    split: str | None,
    mask_path: Path | None,
    problem: str | None,
) -> dict:
    return {
        "path": (root / rel).as_posix(),
        "rel_path": rel,
        "image_id": image_id(source_name, rel),
        "label": int(label),
        "label_name": label_name,
        "split": split,
        "mask_path": mask_path.as_posix() if mask_path is not None else None,
        "problem": problem,
    }


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(SOURCE_COLUMNS))
    df["label"] = df["label"].astype("int64")
    for col in ("label_name", "split", "mask_path", "problem"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df.sort_values("rel_path", kind="stable").reset_index(drop=True)
