"""The backbone is checked on the driver before ingestion lists or reads a single file."""

from __future__ import annotations

import pytest

from tests.core.models.test_families import save_tiny
from xai_kedro.pipelines.ingestion import nodes

SOURCE = {"kind": "image_folder", "root": "does-not-matter"}


@pytest.fixture
def no_listing(monkeypatch):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("the source was listed before the backbone was checked")

    monkeypatch.setattr(nodes, "list_source", forbidden)
    monkeypatch.setattr(nodes, "IngestionSettings", None)  # not even the settings are read


def fails_in_one_line(backbone: dict) -> str:
    with pytest.raises(SystemExit) as exit_info:
        nodes.list_images({"source": SOURCE}, backbone)
    message = str(exit_info.value)
    assert "\n" not in message
    return message


def test_missing_checkpoint_fails_before_any_file_is_read(no_listing, tmp_path):
    message = fails_in_one_line(
        {"source": str(tmp_path / "nowhere"), "input_size": 32, "pretrain": {"enabled": False}}
    )
    assert message.startswith("backbone.source:") and "does not exist" in message


def test_missing_hub_checkpoint_offline_fails_in_one_line(no_listing, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    message = fails_in_one_line({"source": "someone/some-vit", "input_size": 224})
    assert message.startswith("backbone.source:") and "hf download someone/some-vit" in message


def test_unsupported_model_type_lists_the_families(no_listing, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "resnet"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    message = fails_in_one_line({"source": str(tmp_path), "input_size": 32})
    assert "backbone.source" in message and "'resnet'" in message
    assert "dinov2" in message and "clip_vision" in message and "siglip_vision" in message


def test_input_size_the_checkpoint_cannot_take(no_listing, tmp_path):
    save_tiny("vit", tmp_path)  # patch 8
    message = fails_in_one_line({"source": str(tmp_path), "input_size": 36})
    assert message.startswith("backbone.input_size: 36 is not a multiple")
