"""Backbone loading (offline errors, local round trip, type check), storage, fingerprint, pre-training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.core.tiny import hub_cache_stand_in
from xai_kedro.core.models.backbone import (
    BackboneUnavailableError,
    backbone_fingerprint,
    build_backbone,
    load_backbone,
    resolve_weights_dir,
    save_backbone,
    small_backbone_config,
)
from xai_kedro.core.models.pretrain import PretrainSettings, pretrain_backbone

TINY_SHAPE = {
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "mlp_ratio": 2,
}


def tiny_config(registers: int = 0):
    return small_backbone_config(**TINY_SHAPE, num_register_tokens=registers)


def tiny_model(registers: int = 0, seed: int = 0):
    torch.manual_seed(seed)
    return build_backbone(tiny_config(registers)).eval()


def test_missing_hub_weights_offline_explain_the_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(BackboneUnavailableError) as info:
        load_backbone("facebook/dinov2-base", local_files_only=False)  # the env forces offline
    message = str(info.value)
    assert "'facebook/dinov2-base'" in message
    assert "hf download facebook/dinov2-base" in message
    assert "huggingface-cli download facebook/dinov2-base" in message
    assert str(tmp_path / "empty-cache") in message and "$HF_HUB_CACHE" in message
    assert "HF_HUB_OFFLINE=1" in message and "backbone.source" in message


def test_missing_hub_weights_with_explicit_cache_and_revision(tmp_path):
    with pytest.raises(BackboneUnavailableError) as info:
        load_backbone(
            "facebook/dinov2-with-registers-small", cache_dir=str(tmp_path), revision="v1.0"
        )
    message = str(info.value)
    assert "hf download facebook/dinov2-with-registers-small --revision v1.0" in message
    assert str(tmp_path) in message and "cache_dir argument" in message


def test_missing_or_unusable_local_directory(tmp_path):
    with pytest.raises(BackboneUnavailableError, match="does not exist"):
        load_backbone(str(tmp_path / "nowhere" / "backbone"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneUnavailableError, match="no config.json"):
        load_backbone(str(tmp_path / "empty"))
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
    with pytest.raises(BackboneUnavailableError, match="no \\*.safetensors"):
        load_backbone(str(tmp_path / "empty"))


@pytest.mark.parametrize("registers", [0, 2])
def test_local_round_trip_gives_identical_outputs(tmp_path, registers):
    model = tiny_model(registers)
    directory = save_backbone(model, tmp_path / "bb")
    loaded = load_backbone(str(directory))
    assert type(loaded) is type(model)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.config._attn_implementation == "sdpa"
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(
            loaded(pixel_values=x).last_hidden_state, model(pixel_values=x).last_hidden_state
        )
    assert [p.name for p in tmp_path.iterdir()] == ["bb"]  # no temp directory left behind


def test_unregistered_model_type_is_rejected_naming_the_families(tmp_path):
    directory = tmp_path / "resnet"
    directory.mkdir()
    (directory / "config.json").write_text('{"model_type": "resnet"}')
    (directory / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="'resnet' model, not a registered backbone family") as err:
        load_backbone(str(directory))
    assert "dinov2" in str(err.value) and "siglip_vision" in str(err.value)
    from transformers import ResNetConfig

    with pytest.raises(ValueError, match="not a registered backbone family"):
        build_backbone(ResNetConfig())


def test_hub_id_loads_from_the_local_cache_and_resolves_to_its_snapshot(tmp_path, monkeypatch):
    model = tiny_model(registers=2)
    snapshot = hub_cache_stand_in(tmp_path / "cache", "facebook/dinov2-with-registers-small", model)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    loaded = load_backbone("facebook/dinov2-with-registers-small")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).last_hidden_state, model(x).last_hidden_state)
    # workers load by this path, whatever their own HF_* environment says
    assert resolve_weights_dir("facebook/dinov2-with-registers-small") == snapshot.resolve()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    with pytest.raises(BackboneUnavailableError, match="elsewhere"):
        resolve_weights_dir("facebook/dinov2-with-registers-small")
    assert backbone_fingerprint(snapshot) == backbone_fingerprint(
        save_backbone(model, tmp_path / "d")
    )
    assert resolve_weights_dir(str(snapshot)) == snapshot.resolve()
    with pytest.raises(BackboneUnavailableError, match="config.json"):
        resolve_weights_dir(str(tmp_path))


def test_failed_save_keeps_previous_backbone(tmp_path, monkeypatch):
    first = tiny_model(seed=0)
    directory = save_backbone(first, tmp_path / "bb")
    fingerprint = backbone_fingerprint(directory)
    second = tiny_model(seed=1)

    def crash(self, path, **kwargs):  # writes a broken file, then dies like a killed job
        with open(f"{path}/config.json", "w") as handle:
            handle.write("{")
        raise OSError("killed mid-write")

    monkeypatch.setattr(type(second), "save_pretrained", crash)
    with pytest.raises(OSError, match="killed"):
        save_backbone(second, tmp_path / "bb")
    assert backbone_fingerprint(directory) == fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bb"]
    with pytest.raises(OSError, match="killed"):
        save_backbone(second, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_fingerprint_tracks_weights_not_writer_metadata(tmp_path):
    model = tiny_model()
    a = backbone_fingerprint(save_backbone(model, tmp_path / "a"))
    b_dir = save_backbone(model, tmp_path / "b")
    config = json.loads((b_dir / "config.json").read_text())
    config["transformers_version"] = "0.0.1"
    (b_dir / "config.json").write_text(json.dumps(config, indent=4))
    assert backbone_fingerprint(b_dir) == a  # same weights, re-saved by another version
    with torch.no_grad():
        model.layernorm.weight.add_(1e-3)
    assert backbone_fingerprint(save_backbone(model, tmp_path / "c")) != a
    config["hidden_act"] = "relu"
    (b_dir / "config.json").write_text(json.dumps(config))
    assert backbone_fingerprint(b_dir) != a
    with pytest.raises(BackboneUnavailableError):
        backbone_fingerprint("some-org/not-in-cache")


def test_small_backbone_config():
    plain = small_backbone_config()
    assert plain.model_type == "dinov2" and plain.hidden_size == 96 and plain.image_size == 64
    model = build_backbone(tiny_config(registers=4))
    assert model.config.model_type == "dinov2_with_registers"
    assert model.encoder.layer[0].mlp.fc1.out_features == 64  # mlp_ratio * hidden
    with pytest.raises(ValueError, match="multiple of patch_size"):
        small_backbone_config(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="divisible"):
        small_backbone_config(hidden_size=30, num_heads=4)


def _squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Four classes: a red, green, blue or white square at a random place on dark noise."""
    rng = np.random.default_rng(seed)
    colours = np.array([[230, 40, 40], [40, 230, 40], [40, 40, 230], [230, 230, 230]])
    labels = rng.integers(0, 4, n)
    images = rng.integers(0, 80, (n, 32, 32, 3)).astype(np.uint8)
    for i, label in enumerate(labels):
        y, x = rng.integers(0, 22, 2)
        images[i, y : y + 10, x : x + 10] = colours[label]
    return images, labels


def test_pretrain_backbone_learns():
    train_x, train_y = _squares(256, seed=1)
    val_x, val_y = _squares(96, seed=2)
    settings = PretrainSettings.from_params(
        {"model": TINY_SHAPE, "epochs": 6, "batch_size": 32, "lr": 2e-3, "weight_decay": 0.05}
    )
    model, history = pretrain_backbone(
        train_x,
        train_y,
        settings,
        seed=0,
        device="cpu",
        val_images=val_x,
        val_labels=val_y,
        progress=False,
    )
    assert len(history) == 6
    assert history[-1]["train_accuracy"] > history[0]["train_accuracy"] + 0.25
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["eval_accuracy"] > 0.6  # chance is 0.25
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.config.model_type == "dinov2"
    with pytest.raises(ValueError, match="integer"):
        pretrain_backbone(train_x, train_y.astype(float), PretrainSettings(model=TINY_SHAPE))


def test_pretrain_settings_check_the_block_and_the_model_shape():
    settings = PretrainSettings.from_params(
        {"enabled": True, "model": TINY_SHAPE, "epochs": "3", "augment": {"hflip_p": 0.5}}
    )
    assert settings.epochs == 3 and settings.augment.hflip_p == 0.5
    assert settings.backbone_config().hidden_size == 32
    loop = settings.loop(seed=7)
    assert (loop.seed, loop.epochs, loop.optimizer, loop.augment) == (
        7,
        3,
        "adamw",
        settings.augment,
    )
    with pytest.raises(ValueError, match=r"backbone\.pretrain\.epoch\b"):
        PretrainSettings.from_params({"epoch": 3})
    with pytest.raises(ValueError, match=r"backbone\.pretrain\.model\.layers"):
        PretrainSettings.from_params({"model": {"layers": 2}})
    with pytest.raises(ValueError, match=r"backbone\.pretrain\.augment\.flip"):
        PretrainSettings.from_params({"augment": {"flip": 0.5}})
