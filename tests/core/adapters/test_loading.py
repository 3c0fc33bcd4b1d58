"""Saved adapters reload identically, merge, and load across namings and depths."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from tests.core.adapters.helpers import (
    ALL_ROLES,
    NUM_CLASSES,
    _saved,
    lora_cfg,
    other_naming,
    pixels,
    tiny_backbone,
    trained_like,
)
from tests.core.tiny import tiny_backbone as shared_tiny_backbone
from xai_kedro.core.adapters import (
    AdapterConfig,
    adapted_modules,
    attach_adapter,
    build_inference_model,
    has_lora,
    is_complete,
    read_adapter_files,
    resolve_target_modules,
    save_adapter,
)
from xai_kedro.core.models.classifier import ViTClassifier


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
