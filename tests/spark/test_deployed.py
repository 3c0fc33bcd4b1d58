"""A folder through the registered model (`spark.deployed`), driven by the block's typed
settings: the listing names the block's setting when the folder is missing, and the decoded
folder carries the model's URI and local copy beside the usable rows and the quarantine."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import xai_kedro.core.deploy.model as deploy_model
import xai_kedro.spark.deployed as deployed
from tests.spark.test_ingestion import good_folder, png
from xai_kedro.core.data.decoding import DecodeSettings
from xai_kedro.core.deploy.settings import FolderRunSettings, ScoringSettings
from xai_kedro.core.monitor.settings import MonitorSettings

pytestmark = pytest.mark.integration


def _settings(cls: type, root: Path, tmp_path: Path, **overrides) -> FolderRunSettings:
    source = {"kind": "image_folder", "root": str(root)}
    return cls(source=source, model_dir=str(tmp_path / "model"), **overrides)


def test_a_missing_folder_names_the_blocks_setting(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    for cls, setting in ((ScoringSettings, "scoring.source"), (MonitorSettings, "monitor.source")):
        with pytest.raises(SystemExit, match=setting):
            deployed.list_folder(_settings(cls, missing, tmp_path))


def test_the_decoded_folder_splits_usable_rows_from_the_quarantine(
    spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "folder"
    good_folder(root, per_class=3)
    png(root / "dogs" / "large.png", seed=99, size=(400, 400))  # over max_file_bytes
    settings = _settings(ScoringSettings, root, tmp_path, max_file_bytes=20_000)
    listing = deployed.list_folder(settings)
    copy = tmp_path / "model"
    calls = []

    def local_model(uri, record, model_dir):
        calls.append((uri, record, model_dir))
        return "models:/m/1", copy

    monkeypatch.setattr(deployed, "local_model", local_model)
    monkeypatch.setattr(deploy_model, "bundle_in_model", lambda directory: directory)
    decode = SimpleNamespace(decode=DecodeSettings(storage_size=32))
    monkeypatch.setattr(deployed, "read_bundle", lambda path: decode)
    with deployed.decoded_folder(listing, {"model_uri": "runs:/x"}, settings) as folder:
        good = folder.good.toPandas()
    assert calls == [(None, {"model_uri": "runs:/x"}, settings.model_dir)]
    assert (folder.uri, folder.directory) == ("models:/m/1", copy)
    assert len(good) == 6 and len(folder.quarantine) == 1
    assert folder.quarantine["source_path"].iloc[0].endswith("large.png")
    assert len(good) + len(folder.quarantine) == len(listing)
