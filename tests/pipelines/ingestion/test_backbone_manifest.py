"""prepare_backbone stores the backbone's paths relative to the project root (issue 25)."""

from __future__ import annotations

import json

from tests.core.tiny import tiny_backbone
from xai_kedro.core.models.backbone import RELATIVE_PATHS_KEY, resolve_manifest_paths
from xai_kedro.pipelines.ingestion import nodes

BACKBONE = {
    "source": "data/06_models/my_backbone",
    "input_size": 32,
    "pretrain": {"enabled": False},
}


def test_the_manifest_is_portable_and_resolves_in_a_copy(tmp_path, monkeypatch):
    project = tmp_path / "project"
    tiny_backbone(seed=0).save_pretrained(str(project / BACKBONE["source"]))
    monkeypatch.chdir(project)
    manifest = nodes.prepare_backbone(None, BACKBONE, {}, seed=0)
    assert manifest["source"] == manifest["weights_dir"] == BACKBONE["source"]
    assert manifest[RELATIVE_PATHS_KEY] == ["source", "weights_dir"]
    assert manifest["model_type"] == "dinov2" and manifest["hidden_size"] == 32
    stored = json.loads(json.dumps(manifest))  # what the JSON dataset writes and reads back
    resolved = resolve_manifest_paths(stored)
    assert resolved["weights_dir"] == str((project / BACKBONE["source"]).resolve())


def test_a_hub_id_stays_a_hub_id(tmp_path, monkeypatch):
    from tests.core.tiny import hub_cache_stand_in

    snapshot = hub_cache_stand_in(tmp_path / "hf_cache", "someone/tiny-vit", tiny_backbone())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    manifest = nodes.prepare_backbone(None, {**BACKBONE, "source": "someone/tiny-vit"}, {}, seed=0)
    assert manifest["source"] == "someone/tiny-vit"
    assert manifest["weights_dir"] == str(snapshot.resolve())  # outside the project: absolute
    assert manifest[RELATIVE_PATHS_KEY] == []
