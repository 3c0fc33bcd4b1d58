"""AdapterConfig parsing, validation and the cache key."""

from __future__ import annotations

import json

import pytest

from tests.core.adapters.helpers import (
    lora_cfg,
)
from xai_kedro.core.adapters import (
    AdapterConfig,
    config_hash,
)


def test_config_parsing_and_round_trip():
    cfg = AdapterConfig.from_params(
        {"adapter_id": "x", "rank": 16, "alpha": "2r", "target_roles": "value, query,fc2"}
    )
    assert cfg.alpha == 32.0
    assert cfg.target_roles == ("query", "value", "fc2")  # canonical order
    assert AdapterConfig.from_params(cfg.to_dict()) == cfg
    json.dumps(cfg.to_dict())  # JSON-ready
    assert AdapterConfig.from_params({"adapter_id": "y", "rank": 8, "alpha": "r"}).alpha == 8.0


@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"adapter_id": "x", "rnak": 4},
            r"unknown setting adapter_training\.zoo\.members\[\]\.rnak",
        ),
        ({"adapter_id": "bad/id"}, "adapter_id"),
        ({"adapter_id": "x", "rank": 4, "target_roles": ["query", "qkv"]}, "Unknown target roles"),
        ({"adapter_id": "x", "rank": 4, "alpha": "two"}, "alpha"),
        ({"adapter_id": "x", "optimizer": "adam"}, "optimizer"),
        ({"adapter_id": "x", "augmentation": {"flip": 0.5}}, r"augmentation\.flip"),
        ({"rank": 4}, "adapter_id"),
    ],
)
def test_config_rejects_bad_input(params, match):
    with pytest.raises(ValueError, match=match):
        AdapterConfig.from_params(params)


def test_config_hash_stable_and_sensitive():
    base = lora_cfg(use_dora=True, use_rslora=True, lr=3e-4, augmentation={"hflip_p": 0.5})
    h = config_hash(base, "data1")
    assert h == config_hash(AdapterConfig.from_params(base.to_dict()), "data1")
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


def test_augmentations_added_later_keep_the_old_cache_keys():
    """blur_sigma / noise_std / cutout at their default (off) leave the hash what it was before
    they existed (values from that code), so no cached adapter is retrained; on, they count."""
    old = {
        "a": "fc02005d4bae3de39a808fc25d7b6878f3406fc4337360e95eb1826768006714",
        "b": "1185f70610967d87aaa9e941c538e3758a276e19c1e76c405d4a02920c1a1c81",
    }
    aug = {"hflip_p": 0.5, "rotation_deg": 15}
    a = AdapterConfig.from_params({"adapter_id": "a", "rank": 8, "augmentation": aug})
    b = AdapterConfig.from_params({"adapter_id": "b", "rank": 0})
    assert config_hash(a, "fp") == old["a"] and config_hash(b, "fp") == old["b"]
    explicit = {**aug, "blur_sigma": 0, "noise_std": 0.0, "cutout": 0}
    a_explicit = AdapterConfig.from_params({"adapter_id": "a", "rank": 8, "augmentation": explicit})
    assert config_hash(a_explicit, "fp") == old["a"]
    hashes = {
        config_hash(
            AdapterConfig.from_params(
                {"adapter_id": "a", "rank": 8, "augmentation": {**aug, name: value}}
            ),
            "fp",
        )
        for name, value in (("blur_sigma", 2.0), ("noise_std", 40.0), ("cutout", 0.25))
    }
    assert len(hashes) == 3 and old["a"] not in hashes
    assert AdapterConfig.from_params(a_explicit.to_dict()) == a_explicit  # round trip


# ------------------------------------------------------------------------------------- zoo
