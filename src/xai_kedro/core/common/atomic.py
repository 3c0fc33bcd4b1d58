"""Directories that appear complete or not at all (a killed writer leaves no half copy)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _publish(tmp: Path, final: Path, attempts: int) -> None:
    """Rename `tmp` to `final`; an existing `final` is moved aside first, then deleted.

    Retried a few times because a concurrent writer (speculative Spark task) may publish the
    same directory in between; if the swap fails, the previous version is put back.
    """
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            os.replace(tmp, final)  # atomic; succeeds when `final` is absent (or empty)
            return
        except OSError:
            if last or not final.exists():
                raise
        backup = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(final, backup)
        except FileNotFoundError:  # a concurrent writer moved it: try again
            continue
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.exists():
                os.replace(backup, final)  # put the previous version back
            shutil.rmtree(backup, ignore_errors=True)
            if last:
                raise
            continue
        shutil.rmtree(backup, ignore_errors=True)
        return


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, attempts: int = 3) -> Iterator[Path]:
    """Yield a sibling temp directory to write into; publish it at `final` only on success.

    A crash or exception leaves `final` untouched (a previous complete version survives); a
    hard kill can only leave a hidden `.<name>.tmp-*` sibling, never a half `final`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; readers on a cluster need access
        _publish(tmp, final, attempts)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
