"""Sources a user can get wrong end `kedro run` in one line naming the root and the counts, with
no traceback: every file broken, only empty class folders, no class folder at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_tiny_project, run_kedro
from tests.core.tiny import tiny_backbone

pytestmark = pytest.mark.integration

ENV = "edges"


def _all_broken(root: Path) -> list[str]:
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / "cats/notes.jpg").write_text("not an image")
    (root / "dogs/empty.png").write_bytes(b"")
    return ["no usable image", "2 listed files, all quarantined", "not_an_image 1", "empty 1"]


def _empty_classes(root: Path) -> list[str]:
    for name in ("cats", "dogs", "owls"):
        (root / name).mkdir(parents=True)
    return ["lists no file", "3 class sub-folders (cats, dogs, owls) hold 0 files"]


def _no_class_folder(root: Path) -> list[str]:
    root.mkdir(parents=True)
    (root / "a.png").write_bytes(b"x")
    (root / "b.png").write_bytes(b"x")
    return ["no class sub-folders", "0 folders, 2 files directly under it"]


CASES = {"all_broken": _all_broken, "empty_classes": _empty_classes, "no_class": _no_class_folder}


def _project(tmp_path: Path, case: str) -> tuple[Path, Path, list[str]]:
    """A project whose `edges` env points an image-folder source at the case's root."""
    project = make_tiny_project(tmp_path / "project")
    root = (tmp_path / case).resolve()
    expected = CASES[case](root)
    env = project / "conf" / ENV
    env.mkdir()
    # A usable backbone (a tiny local stand-in): it is checked before any file is listed, so
    # the source's own error is the one these cases reach.
    checkpoint = tmp_path / "backbone"
    tiny_backbone().save_pretrained(str(checkpoint))
    params = {
        "backbone": {"source": str(checkpoint), "input_size": 32, "pretrain": {"enabled": False}},
        "ingestion": {"source": {"kind": "image_folder", "name": case, "root": str(root)}},
    }
    (env / "parameters.yml").write_text(yaml.safe_dump(params))
    return project, root, expected


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_source_ends_the_run_in_one_line(case, spark, tmp_path, monkeypatch):
    project, root, expected = _project(tmp_path, case)
    with pytest.raises(SystemExit) as stop:
        run_kedro(project, monkeypatch, pipelines=["ingestion"], env=ENV)
    message = str(stop.value.code)
    assert "\n" not in message and str(root) in message, message
    for part in expected:
        assert part in message, (part, message)
    cli = subprocess.run(
        [
            str(Path(sys.executable).with_name("kedro")),
            "run",
            "--env",
            ENV,
            "--pipelines",
            "ingestion",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    output = cli.stderr + cli.stdout
    assert cli.returncode != 0
    assert "Traceback" not in output and "FileNotFoundError" not in output, output
    assert message in cli.stderr.splitlines()
