"""Atomic adapter storage: no half adapter, tampering detected."""

from __future__ import annotations

import pytest

from tests.core.adapters.helpers import (
    NUM_CLASSES,
    _saved,
    lora_cfg,
    tiny_backbone,
)
from xai_kedro.core.adapters import (
    AdapterConfig,
    attach_adapter,
    is_complete,
    read_adapter_files,
    save_adapter,
    storage,
)
from xai_kedro.core.models.classifier import ViTClassifier


def test_failed_save_leaves_no_half_adapter_and_keeps_previous(tmp_path, monkeypatch):
    cfg = lora_cfg()
    backbone, clf, directory = _saved(tmp_path, cfg)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    real_save_file = storage.save_file
    calls = []

    def failing_save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if filename.endswith("head.safetensors"):  # the adapter weights are already written
            raise OSError("disk full (simulated kill)")
        return real_save_file(tensors, filename, metadata=metadata)

    monkeypatch.setattr(storage, "save_file", failing_save_file)
    with pytest.raises(OSError, match="simulated"):
        save_adapter(clf, cfg, directory, {"config_hash": "h2"})
    assert len(calls) == 2
    # The previous complete adapter survives untouched; the new one never appears.
    assert is_complete(directory, "h1") and not is_complete(directory, "h2")
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no temp leftovers

    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="simulated"):
        save_adapter(clf, cfg, fresh, {"config_hash": "h3"})
    assert not fresh.exists() and not is_complete(fresh, "h3")

    monkeypatch.setattr(storage, "save_file", real_save_file)
    save_adapter(clf, cfg, directory, {"config_hash": "h2"})  # overwrite succeeds
    assert is_complete(directory, "h2") and not is_complete(directory, "h1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_is_complete_detects_tampering(tmp_path):
    _, _, directory = _saved(tmp_path, lora_cfg())
    assert is_complete(directory, "h1") and is_complete(directory, None)
    head = directory / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    assert not is_complete(directory, "h1")
    with pytest.raises(FileNotFoundError, match="not a complete adapter"):
        read_adapter_files(directory)
    (directory / "COMPLETE").unlink()
    assert not is_complete(directory, None)
    assert not is_complete(tmp_path / "missing", None)


def test_save_adapter_requires_hash_and_matching_model(tmp_path):
    clf = attach_adapter(ViTClassifier(tiny_backbone(), NUM_CLASSES), lora_cfg())
    with pytest.raises(ValueError, match="config_hash"):
        save_adapter(clf, lora_cfg(), tmp_path / "a", {})
    with pytest.raises(ValueError, match="linear probe"):
        save_adapter(clf, AdapterConfig("p", rank=0), tmp_path / "a", {"config_hash": "h"})
    assert not (tmp_path / "a").exists()


def test_adapter_stores_its_class_names_and_backbone_family(tmp_path):
    clf = attach_adapter(ViTClassifier(tiny_backbone(), NUM_CLASSES), lora_cfg())
    save_adapter(clf, lora_cfg(), tmp_path / "a", {"config_hash": "h"}, class_names=["a", "b", "c"])
    meta = storage.read_adapter_meta(read_adapter_files(tmp_path / "a"))
    assert meta["class_names"] == ["a", "b", "c"]
    assert meta["backbone_family"] == "dinov2" and meta["hidden_size"] == 32
    save_adapter(clf, lora_cfg(), tmp_path / "b", {"config_hash": "h"})
    assert "class_names" not in storage.read_adapter_meta(read_adapter_files(tmp_path / "b"))
