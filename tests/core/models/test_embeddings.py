"""Frozen-backbone CLS embeddings: the backbone's CLS output, whatever the batching or device."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.core.tiny import fp32_on_cuda, needs_cuda, tiny_backbone
from xai_kedro.core.data.preprocessing import to_model_input
from xai_kedro.core.models import embeddings
from xai_kedro.core.models.embeddings import embed_images


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 40, 40, 3), dtype=np.uint8)


def test_embeddings_are_the_cls_output_in_any_batching(images):
    backbone = tiny_backbone(registers=2)
    got = embed_images(backbone, images, input_size=32, device=torch.device("cpu"), batch_size=3)
    with torch.inference_mode():
        x = to_model_input(torch.from_numpy(images), 32)
        want = backbone(pixel_values=x).last_hidden_state[:, 0].numpy()
    assert got.shape == (7, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    empty = embed_images(backbone, images[:0], input_size=32, device=torch.device("cpu"))
    assert empty.shape == (0, 32)
    with pytest.raises(ValueError, match="uint8 images"):
        embed_images(backbone, images.astype(np.float32), input_size=32, device="cpu")


# --- CUDA (run on a GPU machine: scripts/gpu_check.sh; skipped in CI) ------------------------


@needs_cuda
def test_cuda_embeddings_match_the_cpu(images, monkeypatch):
    backbone = tiny_backbone()
    cpu = embed_images(backbone, images, input_size=32, device=torch.device("cpu"))
    gpu_backbone = copy.deepcopy(backbone).cuda()
    bf16 = embed_images(gpu_backbone, images, input_size=32, device=torch.device("cuda"))
    fp32_on_cuda(monkeypatch, embeddings)
    fp32 = embed_images(gpu_backbone, images, input_size=32, device=torch.device("cuda"))
    np.testing.assert_allclose(fp32, cpu, atol=1e-4)
    np.testing.assert_allclose(bf16, cpu, atol=0.1)  # LayerNorm output, unit scale
