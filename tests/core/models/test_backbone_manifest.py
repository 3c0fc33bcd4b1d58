"""Portable backbone manifests: paths relative to the project root, resolved where they are read."""

from __future__ import annotations

import json
import shutil

import torch

from tests.core.tiny import tiny_backbone
from xai_kedro.core.models.backbone import (
    RELATIVE_PATHS_KEY,
    backbone_fingerprint,
    load_backbone,
    portable_manifest_paths,
    resolve_manifest_paths,
    resolve_weights_dir,
    save_backbone,
)

RELATIVE_DIR = "data/06_models/backbone"


def _write_project(root, seed: int) -> dict:
    """A project at `root` with its own backbone; returns the manifest as prepare_backbone does."""
    directory = save_backbone(tiny_backbone(seed=seed), root / RELATIVE_DIR)
    manifest = {
        "source": str(directory.resolve()),
        "weights_dir": str(resolve_weights_dir(directory)),
        "local_files_only": True,
        "input_size": 32,
    }
    stored = portable_manifest_paths(manifest, root)
    (root / "data/06_models/backbone_manifest.json").write_text(json.dumps(stored))
    return stored


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_a_copied_project_loads_its_own_backbone(tmp_path):
    first, copy = tmp_path / "A", tmp_path / "B"
    stored = _write_project(first, seed=0)
    assert stored["source"] == stored["weights_dir"] == RELATIVE_DIR
    assert stored[RELATIVE_PATHS_KEY] == ["source", "weights_dir"]
    fingerprint = backbone_fingerprint(first / RELATIVE_DIR)
    shutil.copytree(first, copy)
    save_backbone(tiny_backbone(seed=1), first / RELATIVE_DIR)  # A's backbone changes later

    manifest = json.loads((copy / "data/06_models/backbone_manifest.json").read_text())
    resolved = resolve_manifest_paths(manifest, copy)
    expected = str((copy / RELATIVE_DIR).resolve())
    assert resolved["source"] == resolved["weights_dir"] == expected
    assert RELATIVE_PATHS_KEY not in resolved
    loaded = load_backbone(resolved["weights_dir"])
    assert _same_weights(loaded, tiny_backbone(seed=0))
    assert not _same_weights(loaded, load_backbone(str(first / RELATIVE_DIR)))
    # the fingerprint (every cache key on the backbone) hashes the files, not where they are
    assert backbone_fingerprint(resolved["weights_dir"]) == fingerprint


def test_resolving_defaults_to_the_working_directory(tmp_path, monkeypatch):
    stored = _write_project(tmp_path, seed=0)
    monkeypatch.chdir(tmp_path)
    resolved = resolve_manifest_paths(stored)
    assert resolved["weights_dir"] == str((tmp_path / RELATIVE_DIR).resolve())
    assert resolve_manifest_paths(resolved) == resolved  # resolving twice changes nothing
    assert portable_manifest_paths(resolved) == stored  # and the round trip is exact


def test_paths_outside_the_project_and_hub_ids_stay_as_they_are(tmp_path):
    snapshot = str((tmp_path / "hf_cache" / "snapshots" / "0").resolve())
    manifest = {"source": "facebook/dinov2-base", "weights_dir": snapshot, "input_size": 224}
    stored = portable_manifest_paths(manifest, tmp_path / "project")
    assert stored == {**manifest, RELATIVE_PATHS_KEY: []}
    assert resolve_manifest_paths(stored, tmp_path / "elsewhere") == manifest


def test_a_manifest_stored_before_paths_were_portable_resolves_unchanged(tmp_path):
    old = {"source": "/abs/backbone", "weights_dir": "/abs/backbone", "input_size": 48}
    assert resolve_manifest_paths(old, tmp_path) == old
