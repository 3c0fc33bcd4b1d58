"""Every stage normalises with the (mean, std) of the checkpoint in use: its
`preprocessor_config.json`, else its family's; DINOv2 keeps the ImageNet constants exactly."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import transformers

from xai_kedro.core.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, normalise, resize_uint8
from xai_kedro.core.models.backbone import build_backbone, load_backbone, small_backbone_config
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.embeddings import embed_images
from xai_kedro.core.models.families import CLIP_MEAN, CLIP_STD, pixel_stats
from xai_kedro.core.models.inference import predict_logits
from xai_kedro.core.models.training import evaluate
from xai_kedro.core.xai.engine import explain_chunk
from xai_kedro.core.xai.settings import XAIConfig

OWN_MEAN = (0.1, 0.2, 0.3)
OWN_STD = (0.4, 0.5, 0.6)


def save_clip(directory, preprocessor: dict | None = None) -> str:
    torch.manual_seed(0)
    config = transformers.CLIPVisionConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    transformers.CLIPVisionModel(config).save_pretrained(str(directory))
    if preprocessor is not None:
        (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return str(directory)


def images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def expected_logits(model: ViTClassifier, host: np.ndarray, mean, std) -> torch.Tensor:
    x = normalise(resize_uint8(torch.from_numpy(host), 32), mean, std)
    with torch.inference_mode():
        return model(x).float()


@pytest.fixture(scope="module")
def clip_own(tmp_path_factory) -> ViTClassifier:
    directory = tmp_path_factory.mktemp("clip_own")
    save_clip(directory, {"image_mean": list(OWN_MEAN), "image_std": list(OWN_STD)})
    torch.manual_seed(1)
    return ViTClassifier(load_backbone(str(directory)), 3).eval()


def test_clip_checkpoint_is_normalised_with_its_preprocessor_config(clip_own):
    assert pixel_stats(clip_own) == (OWN_MEAN, OWN_STD)
    host = images()
    own = expected_logits(clip_own, host, OWN_MEAN, OWN_STD)
    torch.testing.assert_close(predict_logits(clip_own, host, input_size=32), own)
    imagenet = expected_logits(clip_own, host, IMAGENET_MEAN, IMAGENET_STD)
    assert not torch.allclose(own, imagenet, atol=1e-4)  # the statistics change the answer
    chunk = explain_chunk(clip_own, host, [0, 1, 2, 0], XAIConfig(input_size=32, steps=2))
    torch.testing.assert_close(chunk.logits, own)


def test_training_evaluation_and_embeddings_use_the_checkpoint_statistics(clip_own):
    host = images()
    labels = np.array([0, 1, 2, 0])
    own = expected_logits(clip_own, host, OWN_MEAN, OWN_STD)
    metrics = evaluate(clip_own, host, labels, input_size=32, device="cpu")
    assert metrics["accuracy"] == float((own.argmax(1).numpy() == labels).mean())
    embedded = embed_images(clip_own.backbone, host, input_size=32, device=torch.device("cpu"))
    x = normalise(resize_uint8(torch.from_numpy(host), 32), OWN_MEAN, OWN_STD)
    with torch.inference_mode():
        reference = clip_own.backbone(pixel_values=x).last_hidden_state[:, 0]
    torch.testing.assert_close(torch.from_numpy(embedded), reference)


def test_copies_keep_the_statistics(clip_own):
    assert pixel_stats(copy.deepcopy(clip_own).to("cpu")) == (OWN_MEAN, OWN_STD)


def test_clip_without_preprocessor_config_takes_the_family_statistics(tmp_path):
    backbone = load_backbone(save_clip(tmp_path))
    assert pixel_stats(backbone) == (CLIP_MEAN, CLIP_STD)


def test_dinov2_keeps_the_imagenet_constants_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    built = build_backbone(small_backbone_config(image_size=32, hidden_size=32, num_heads=2))
    built.save_pretrained(str(tmp_path))
    for backbone in (built, load_backbone(str(tmp_path))):
        assert pixel_stats(backbone) == (IMAGENET_MEAN, IMAGENET_STD)
    torch.manual_seed(1)
    model = ViTClassifier(load_backbone(str(tmp_path)), 3).eval()
    host = images()
    reference = normalise(resize_uint8(torch.from_numpy(host), 32))  # the defaults, as before
    with torch.inference_mode():
        assert torch.equal(predict_logits(model, host, input_size=32), model(reference).float())
