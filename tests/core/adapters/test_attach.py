"""Attaching a fresh, seeded adapter for training."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    Dinov2Model,
)

from tests.core.adapters.helpers import (
    NUM_CLASSES,
    lora_cfg,
    tiny_backbone,
)
from xai_kedro.core.adapters import (
    AdapterConfig,
    attach_adapter,
    count_trainable,
    has_lora,
)
from xai_kedro.core.models.classifier import ViTClassifier


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
