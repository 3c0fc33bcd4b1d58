"""Adapter configs, zoo expansion, LoRA target resolution, atomic storage and inference loading."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import nn
from transformers import (
    Dinov2Model,
)

from tests.core.tiny import tiny_backbone as shared_tiny_backbone
from xai_kedro.core.adapters import (
    AdapterConfig,
    adapted_modules,
    attach_adapter,
    build_inference_model,
    config_hash,
    count_trainable,
    expand_zoo,
    has_lora,
    is_complete,
    read_adapter_files,
    resolve_target_modules,
    save_adapter,
    storage,
)
from xai_kedro.core.models.classifier import ViTClassifier

NUM_CLASSES = 3
ALL_ROLES = ("query", "value", "fc1", "fc2")


def tiny_backbone(registers: int = 0, seed: int = 0) -> nn.Module:
    return shared_tiny_backbone(registers, seed).requires_grad_(False)


def trained_like(classifier: nn.Module, seed: int = 1, scale: float = 0.2) -> nn.Module:
    """Give every trainable tensor a random non-zero value (LoRA B starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in classifier.parameters():
            if param.requires_grad:
                param.add_(scale * torch.randn(param.shape, generator=gen))
    return classifier.eval()


def pixels(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def lora_cfg(**kw) -> AdapterConfig:
    params = dict(adapter_id="a", rank=4, alpha="2r", target_roles=ALL_ROLES)
    params.update(kw)
    return AdapterConfig.from_dict(params)


# ---------------------------------------------------------------------------------- config
def test_config_parsing_and_round_trip():
    cfg = AdapterConfig.from_dict(
        {"adapter_id": "x", "rank": 16, "alpha": "2r", "target_roles": "value, query,fc2"}
    )
    assert cfg.alpha == 32.0
    assert cfg.target_roles == ("query", "value", "fc2")  # canonical order
    assert AdapterConfig.from_dict(cfg.to_dict()) == cfg
    json.dumps(cfg.to_dict())  # JSON-ready
    assert AdapterConfig.from_dict({"adapter_id": "y", "rank": 8, "alpha": "r"}).alpha == 8.0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"adapter_id": "x", "rnak": 4}, "Unknown adapter config keys"),
        ({"adapter_id": "bad/id"}, "adapter_id"),
        ({"adapter_id": "x", "rank": 4, "target_roles": ["query", "qkv"]}, "Unknown target roles"),
        ({"adapter_id": "x", "rank": 4, "alpha": "two"}, "alpha"),
        ({"adapter_id": "x", "optimizer": "adam"}, "optimizer"),
        ({"adapter_id": "x", "augmentation": {"flip": 0.5}}, "augmentation keys"),
        ({"rank": 4}, "adapter_id"),
    ],
)
def test_config_rejects_bad_input(params, match):
    with pytest.raises(ValueError, match=match):
        AdapterConfig.from_dict(params)


def test_config_hash_stable_and_sensitive():
    base = lora_cfg(use_dora=True, use_rslora=True, lr=3e-4, augmentation={"hflip_p": 0.5})
    h = config_hash(base, "data1")
    assert h == config_hash(AdapterConfig.from_dict(base.to_dict()), "data1")
    reordered = lora_cfg(
        use_dora=True,
        use_rslora=True,
        lr=0.0003,
        augmentation={"hflip_p": 0.5},
        target_roles=["fc2", "fc1", "value", "query"],
    )
    assert config_hash(reordered, "data1") == h
    # The id is a name, not a training input.
    assert (
        config_hash(
            lora_cfg(
                adapter_id="renamed", use_dora=True, use_rslora=True, augmentation={"hflip_p": 0.5}
            ),
            "data1",
        )
        == h
    )
    changes = [
        {"rank": 8},
        {"alpha": 4},
        {"use_dora": False},
        {"use_rslora": False},
        {"lr": 1e-3},
        {"epochs": 3},
        {"seed": 1},
        {"dropout": 0.1},
        {"target_roles": ["query", "value"]},
        {"augmentation": {"hflip_p": 0.0}},
        {"grad_accumulation": 2},
        {"batch_size": 8},
    ]
    base_kw = dict(use_dora=True, use_rslora=True, augmentation={"hflip_p": 0.5})
    hashes = {config_hash(lora_cfg(**{**base_kw, **c}), "data1") for c in changes}
    assert h not in hashes and len(hashes) == len(changes)
    assert config_hash(base, "data2") != h
    # Linear probes ignore the LoRA-only fields.
    p1 = AdapterConfig(adapter_id="p", rank=0, alpha=8, use_dora=True)
    p2 = AdapterConfig(adapter_id="p", rank=0, alpha=64)
    assert config_hash(p1, "d") == config_hash(p2, "d")


# ------------------------------------------------------------------------------------- zoo
def test_expand_zoo_members_grid_and_2r():
    zoo = expand_zoo(
        {
            "defaults": {"alpha": "2r", "use_dora": True, "use_rslora": True, "seed": 0},
            "members": [{"rank": 0}, {"adapter_id": "custom", "rank": 8}],
            "grid": {"rank": [4, 16, 32], "seed": [0, 1]},
        }
    )
    ids = [c.adapter_id for c in zoo]
    assert ids[:2] == ["probe_s0", "custom"]
    assert len(zoo) == 2 + 6
    assert "r16_a32_dora_rs_s0" in ids and "r32_a64_dora_rs_s1" in ids
    by_id = {c.adapter_id: c for c in zoo}
    assert by_id["r4_a8_dora_rs_s1"].alpha == 8.0 and by_id["r4_a8_dora_rs_s1"].seed == 1
    assert by_id["custom"].alpha == 16.0


def test_expand_zoo_grid_on_other_fields_gets_distinct_ids():
    zoo = expand_zoo({"defaults": {"rank": 4}, "grid": {"lr": [1e-3, 1e-4]}})
    assert [c.adapter_id for c in zoo] == ["r4_a16_s0_lr0.001", "r4_a16_s0_lr0.0001"]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"members": [{"rank": 4}, {"rank": 4}]}, "Duplicate"),
        ({"members": [{"adapter_id": "a"}, {"adapter_id": "a", "rank": 4}]}, "Duplicate"),
        ({"defaults": {"rank": 4}}, "empty"),
        ({"members": [{"rank": 4}], "extra": 1}, "Unknown zoo keys"),
        ({"grid": {"rank": []}}, "non-empty list"),
        ({"members": [{"rank": 4, "bogus": 1}]}, "member #0"),
    ],
)
def test_expand_zoo_errors(params, match):
    with pytest.raises(ValueError, match=match):
        expand_zoo(params)


# --------------------------------------------------------------------------- target modules
def test_resolve_targets_installed_transformers():
    backbone = tiny_backbone()
    names = resolve_target_modules(backbone, ALL_ROLES)
    assert len(names) == 2 * len(ALL_ROLES)
    modules = dict(backbone.named_modules())
    assert all(isinstance(modules[n], nn.Linear) for n in names)
    assert any(n.endswith(("attention.q_proj", "attention.attention.query")) for n in names)
    assert {n.split(".")[2] for n in names} == {"0", "1"}
    # Names are relative to the model passed in.
    clf_names = resolve_target_modules(ViTClassifier(backbone, 2), ["value"])
    assert all(n.startswith("backbone.encoder.layer.") for n in clf_names)


class _OldAttention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention = nn.Module()
        self.attention.query = nn.Linear(d, d)
        self.attention.value = nn.Linear(d, d)
        self.output = nn.Module()
        self.output.dense = nn.Linear(d, d)


class _OldBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention = _OldAttention(d)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, 2 * d)
        self.mlp.fc2 = nn.Linear(2 * d, d)


def _old_scheme_model(layers: int = 3) -> nn.Module:
    model = nn.Module()
    model.encoder = nn.Module()
    model.encoder.layer = nn.ModuleList([_OldBlock(8) for _ in range(layers)])
    return model


def test_resolve_targets_old_naming_scheme():
    names = resolve_target_modules(_old_scheme_model(), ["query", "value", "output", "fc1", "fc2"])
    assert names[:5] == [
        "encoder.layer.0.attention.attention.query",
        "encoder.layer.0.attention.attention.value",
        "encoder.layer.0.attention.output.dense",
        "encoder.layer.0.mlp.fc1",
        "encoder.layer.0.mlp.fc2",
    ]
    assert len(names) == 15


def test_resolve_targets_errors():
    with pytest.raises(ValueError, match="Unknown target roles"):
        resolve_target_modules(tiny_backbone(), ["qkv"])
    with pytest.raises(ValueError, match="'key' has no linear"):
        resolve_target_modules(_old_scheme_model(), ["key"])  # the fake block has no key
    with pytest.raises(ValueError, match="encoder.layer"):
        resolve_target_modules(nn.Sequential(nn.Linear(2, 2)), ["query"])


# ------------------------------------------------------------------------------- attaching
def test_attach_adapter_freezes_backbone_and_is_seeded():
    backbone = tiny_backbone()
    clf = attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), lora_cfg())
    trainable = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert {"head.weight", "head.bias"} <= trainable
    assert isinstance(clf.backbone, Dinov2Model)  # injected in place, not wrapped
    n_trainable, total = count_trainable(clf)
    assert 0 < n_trainable < total
    again = attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), lora_cfg())
    other = attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), lora_cfg(seed=5))
    sd1, sd2, sd3 = clf.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert not torch.equal(sd1["head.weight"], sd3["head.weight"])
    with pytest.raises(ValueError, match="already carries an adapter"):
        attach_adapter(clf, lora_cfg())


def test_attach_linear_probe_trains_head_only():
    clf = attach_adapter(ViTClassifier(tiny_backbone(), NUM_CLASSES), AdapterConfig("p", rank=0))
    assert not has_lora(clf)
    assert {n for n, p in clf.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}


# query/value names of one transformers naming scheme -> the other's
_OTHER_NAMING = {
    "attention.q_proj": "attention.attention.query",
    "attention.v_proj": "attention.attention.value",
    "attention.attention.query": "attention.q_proj",
    "attention.attention.value": "attention.v_proj",
}


def other_naming(name: str) -> str:
    for old, new in _OTHER_NAMING.items():
        if old in name:
            return name.replace(old, new)
    return name


# --------------------------------------------------------------------------------- storage
def _saved(tmp_path, cfg: AdapterConfig, registers: int = 0, name: str = "adapter"):
    backbone = tiny_backbone(registers)
    clf = trained_like(attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), cfg))
    directory = tmp_path / name
    save_adapter(clf, cfg, directory, {"config_hash": "h1", "metrics": {"accuracy": 0.5}})
    return backbone, clf, directory


@pytest.mark.parametrize(
    "cfg_kw",
    [
        {},  # plain LoRA
        {"use_dora": True, "use_rslora": True},
    ],
    ids=["lora", "dora_rslora"],
)
def test_saved_adapter_reloads_identically_and_merges(tmp_path, cfg_kw):
    cfg = lora_cfg(**cfg_kw)
    backbone, clf, directory = _saved(tmp_path, cfg)
    assert is_complete(directory, "h1")
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "head.safetensors",
        "adapter_meta.json",
        "COMPLETE",
    } <= {p.name for p in directory.iterdir()}
    x = pixels()
    with torch.no_grad():
        reference = clf(x)
        files = read_adapter_files(directory)
        unmerged = build_inference_model(backbone, files, NUM_CLASSES, merge=False)
        merged = build_inference_model(backbone, files, NUM_CLASSES, merge=True)
        out_unmerged, out_merged = unmerged(x), merged(x)
    assert torch.equal(out_unmerged, reference)
    assert torch.allclose(out_merged, out_unmerged, atol=1e-5, rtol=0)
    # The adapter is not a no-op, and merging left plain Linear layers.
    with torch.no_grad():
        base = ViTClassifier(backbone, NUM_CLASSES)
        base.head.load_state_dict(clf.head.state_dict())
        assert (base(x) - reference).abs().max() > 1e-3
    assert has_lora(unmerged) and not has_lora(merged)
    assert not merged.training and not any(p.requires_grad for p in merged.parameters())
    # The caller's backbone stays pristine.
    assert not has_lora(backbone)
    assert torch.equal(
        backbone.state_dict()["encoder.layer.0.mlp.fc1.weight"],
        tiny_backbone().state_dict()["encoder.layer.0.mlp.fc1.weight"],
    )


def test_saved_adapter_is_loadable_by_peft(tmp_path):
    cfg = lora_cfg(use_dora=True, use_rslora=True)
    backbone, clf, directory = _saved(tmp_path, cfg)
    x = pixels()
    peft_model = PeftModel.from_pretrained(copy.deepcopy(backbone), str(directory)).eval()
    with torch.no_grad():
        ours = clf.backbone(pixel_values=x).last_hidden_state
        theirs = peft_model(pixel_values=x).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_linear_probe_and_registers_round_trip(tmp_path):
    cfg = AdapterConfig("probe", rank=0)
    backbone, clf, directory = _saved(tmp_path, cfg, registers=2)
    files = read_adapter_files(directory)
    assert "adapter_model.safetensors" not in files
    model = build_inference_model(backbone, files, NUM_CLASSES)
    x = pixels()
    with torch.no_grad():
        assert torch.equal(model(x), clf(x))


def test_adapter_from_the_other_naming_scheme_loads(tmp_path):
    """Rename stored targets to the other transformers scheme: loading must map them back."""
    cfg = lora_cfg()
    backbone, clf, directory = _saved(tmp_path, cfg)
    files = read_adapter_files(directory)
    del files["COMPLETE"]  # the checksums no longer apply to the rewritten files
    config = json.loads(files["adapter_config.json"])
    config["target_modules"] = [other_naming(n) for n in config["target_modules"]]
    weights = {
        other_naming(k): v for k, v in load_bytes(files["adapter_model.safetensors"]).items()
    }
    assert set(weights) != set(load_bytes(files["adapter_model.safetensors"]))
    files = {
        **files,
        "adapter_config.json": json.dumps(config).encode(),
        "adapter_model.safetensors": save_bytes(weights),
    }
    model = build_inference_model(backbone, files, NUM_CLASSES, merge=False)
    x = pixels()
    with torch.no_grad():
        assert torch.equal(model(x), clf(x))


def test_deep_backbone_adapter_loads_although_peft_shortens_its_targets(tmp_path):
    """12-layer DINOv2 with 2+ roles: PEFT saves >= 20 targets as bare suffixes ("fc1")."""
    backbone = shared_tiny_backbone(layers=6)
    cfg = lora_cfg(use_dora=True, use_rslora=True)  # 4 roles x 6 layers = 24 targets
    clf = trained_like(attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), cfg))
    save_adapter(clf, cfg, tmp_path / "deep", {"config_hash": "h"})
    files = read_adapter_files(tmp_path / "deep")
    stored = json.loads(files["adapter_config.json"])["target_modules"]
    assert len(stored) < 24, "precondition: PEFT stored shortened target names"
    weights = load_bytes(files["adapter_model.safetensors"])
    assert adapted_modules(weights) == sorted(resolve_target_modules(backbone, ALL_ROLES))
    x = pixels()
    with torch.no_grad():
        reference = clf(x)
        merged = build_inference_model(backbone, files, NUM_CLASSES)
        torch.testing.assert_close(merged(x), reference, atol=1e-5, rtol=0)
        # the same file under the other transformers naming (weights renamed, config as stored)
        renamed = {k: v for k, v in files.items() if k != "COMPLETE"}
        renamed["adapter_model.safetensors"] = save_bytes(
            {other_naming(k): v for k, v in weights.items()}
        )
        other = build_inference_model(backbone, renamed, NUM_CLASSES, merge=False)
        assert torch.equal(other(x), reference)


def test_build_inference_model_rejects_bad_input(tmp_path):
    backbone, clf, directory = _saved(tmp_path, lora_cfg())
    files = read_adapter_files(directory)
    with pytest.raises(ValueError, match="classes"):
        build_inference_model(backbone, files, NUM_CLASSES + 1)
    with pytest.raises(ValueError, match="pristine"):
        build_inference_model(clf.backbone, files, NUM_CLASSES)
    corrupted = dict(files, **{"head.safetensors": files["head.safetensors"][:-1] + b"x"})
    with pytest.raises(ValueError, match="checksum"):
        build_inference_model(backbone, corrupted, NUM_CLASSES)
    files = {k: v for k, v in files.items() if k != "COMPLETE"}
    with pytest.raises(ValueError, match="adapter_config.json"):
        build_inference_model(
            backbone, {k: v for k, v in files.items() if k != "adapter_config.json"}, NUM_CLASSES
        )


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
