"""Worker-side backbone loading: the driver resolves the manifest's paths (no Spark needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.core.tiny import tiny_backbone
from xai_kedro.core.models.backbone import portable_manifest_paths
from xai_kedro.spark.embedding_udfs import make_embedder
from xai_kedro.spark.worker import manifest_backbone


def _portable_manifest(project) -> dict:
    weights = project / "data/06_models/backbone"
    tiny_backbone(seed=0).save_pretrained(str(weights))
    manifest = {"source": str(weights.resolve()), "weights_dir": str(weights.resolve())}
    manifest |= {"local_files_only": True, "input_size": 32}
    return portable_manifest_paths(manifest, project)


def test_an_unresolved_manifest_never_reaches_a_worker(tmp_path):
    with pytest.raises(ValueError, match="resolve_manifest_paths"):
        manifest_backbone(_portable_manifest(tmp_path), "cpu")


def test_the_embedder_resolves_on_the_driver(tmp_path, monkeypatch):
    """Built in the project (the driver), run from another working directory (a worker)."""
    project = tmp_path / "project"
    manifest = _portable_manifest(project)
    monkeypatch.chdir(project)
    embed = make_embedder(manifest, batch_size=2, device="cpu")
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    batch = pd.DataFrame(
        {"image_id": ["a", "b"], "height": 32, "width": 32, "pixels": [p.tobytes() for p in pixels]}
    )
    (out,) = list(embed(iter([batch])))
    assert out["image_id"].tolist() == ["a", "b"] and len(out["embedding"][0]) == 32
