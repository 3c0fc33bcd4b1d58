"""TVE: the meta-attribution learns a constructed attribution, the transfer applies the head
exactly, the pre-training is seeded and reused while nothing changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from xai_kedro.core.xai.amortised import PatchNet, training_cost
from xai_kedro.core.xai.explainers import get_explainer, normalised_heatmap
from xai_kedro.core.xai.tve import (
    RECORD_FILE,
    TVESettings,
    load_tve,
    meta_attribution,
    pretrain_tve,
    pretrained_record,
    save_tve,
    shapley_masks,
    transfer,
)

N_PATCHES, DIM, EMBED = 9, 6, 4
QUICK = {"images": 192, "queries": 32, "epochs": 60, "batch_size": 32, "hidden": 32, "lr": 1e-2}


class MarkerBackbone(nn.Module):
    """A frozen 'backbone' whose embedding depends on one patch only: the patch whose token
    carries the marker (feature 0) adds `direction`; the empty input embeds to 0. Its exact
    meta-attribution is phi[i] = marker_i * direction."""

    n_prefix = 1

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.register_buffer("direction", torch.tensor([1.0, -0.5, 2.0, 0.25]))
        self.head = nn.Linear(EMBED, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.arange(classes * EMBED).view(classes, EMBED) % 5 - 2.0)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden[:, self.n_prefix :, 0].sum(dim=1, keepdim=True) * self.direction

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(tokens))


def marked_tokens(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[count, 1 + N, DIM] random tokens, one marked patch per image, and the marked indices."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(count, 1 + N_PATCHES, DIM, generator=generator)
    marked = torch.randint(0, N_PATCHES, (count,), generator=generator)
    tokens[:, :, 0] = 0.0
    tokens[torch.arange(count), 1 + marked, 0] = 1.0
    return tokens, marked


def exact_attribution(backbone: MarkerBackbone, tokens: torch.Tensor) -> torch.Tensor:
    return tokens[:, 1:, 0:1] * backbone.direction  # [B, N, E]


@pytest.fixture(scope="module")
def pretrained() -> tuple[MarkerBackbone, PatchNet, dict]:
    backbone = MarkerBackbone().eval()
    net, record = pretrain_tve(backbone, marked_tokens(192, seed=0)[0], TVESettings(**QUICK))
    return backbone, net, record


def test_meta_attribution_learns_the_constructed_attribution(pretrained):
    backbone, net, record = pretrained
    tokens, marked = marked_tokens(16, seed=1)  # images it never saw
    with torch.no_grad():
        phi = meta_attribution(net, tokens, backbone.n_prefix)
    exact = exact_attribution(backbone, tokens)
    assert (phi - exact).abs().max() < 0.15 * backbone.direction.abs().max()
    assert record["held_out_r2"] > 0.95 and record["seconds"] > 0


def test_transferred_heatmap_finds_the_patch_the_backbone_reads(pretrained, tmp_path):
    backbone, net, record = pretrained
    save_tve(net, record, tmp_path)
    tokens, marked = marked_tokens(16, seed=2)
    with torch.inference_mode():
        logits, heat = get_explainer("tve", weights=str(tmp_path))(backbone, tokens)
    torch.testing.assert_close(logits, backbone.forward_tokens(tokens))
    assert heat.argmax(dim=1).tolist() == marked.tolist()


def test_transfer_applies_the_head_exactly():
    """phi @ W[t] per image; with the exact phi the patch scores sum to
    logit_t(image) - logit_t(empty input) (efficiency carried through the linear head)."""
    backbone = MarkerBackbone()
    tokens, _ = marked_tokens(5, seed=3)
    phi = exact_attribution(backbone, tokens)
    target = torch.tensor([0, 2, 1, 1, 0])
    scores = transfer(phi, backbone.head.weight, target)
    for b in range(5):
        torch.testing.assert_close(scores[b], phi[b] @ backbone.head.weight[target[b]])
    empty = backbone.head(torch.zeros(5, EMBED))
    gap = backbone.forward_tokens(tokens) - empty
    torch.testing.assert_close(scores.sum(dim=1), gap.gather(1, target[:, None])[:, 0])


def test_the_explainer_is_the_transfer_of_its_network(tmp_path):
    backbone = MarkerBackbone()
    net = PatchNet(DIM, EMBED, hidden=8, layers=1, heads=2)
    nn.init.normal_(net.read[1].weight)
    save_tve(net, {"seconds": 2.0}, tmp_path)
    tokens, _ = marked_tokens(4, seed=4)
    with torch.inference_mode():
        _, heat = get_explainer("tve", weights=str(tmp_path))(backbone, tokens)
        target = backbone.forward_tokens(tokens).argmax(dim=1)
        loaded, _ = load_tve(tmp_path)
        expected = transfer(meta_attribution(loaded, tokens, 1), backbone.head.weight, target)
    torch.testing.assert_close(heat, normalised_heatmap(expected))
    cost = training_cost(get_explainer("tve", weights=str(tmp_path)), backbone)
    assert cost.per_backbone == 2.0 and cost.per_adapter == 0.0


def test_pretraining_is_deterministic_per_seed():
    backbone, tokens = MarkerBackbone(), marked_tokens(24, seed=5)[0]
    settings = {**QUICK, "images": 24, "epochs": 2}
    nets = [pretrain_tve(backbone, tokens, TVESettings(**settings))[0] for _ in range(2)]
    other = pretrain_tve(backbone, tokens, TVESettings(**{**settings, "seed": 1}))[0]
    for name, value in nets[0].state_dict().items():
        assert torch.equal(value, nets[1].state_dict()[name])
    assert not torch.equal(nets[0].read[1].weight, other.read[1].weight)


def test_shapley_masks_pair_each_region_with_its_complement():
    keep = shapley_masks(3, 6, N_PATCHES, torch.Generator().manual_seed(0))
    assert keep.shape == (3, 7, N_PATCHES)
    assert torch.equal(keep[:, 0:6:2], ~keep[:, 1:6:2])
    assert keep[:, -1].all()
    kept = keep[:, 0:6:2].sum(dim=-1)
    assert ((kept >= 1) & (kept <= N_PATCHES - 1)).all()


def test_a_pretrained_explainer_is_reused_while_its_fingerprint_holds(tmp_path):
    calls = []

    def train():
        calls.append(1)
        return PatchNet(DIM, EMBED, 8, 1, 2), {"seconds": 3.0, "held_out_r2": 0.9}

    first = pretrained_record(tmp_path, "abc", train)
    again = pretrained_record(tmp_path, "abc", train)
    assert len(calls) == 1 and first == again and again["seconds"] == 3.0
    pretrained_record(tmp_path, "changed", train)
    assert len(calls) == 2
    assert json.loads((tmp_path / RECORD_FILE).read_text())["fingerprint"] == "changed"


def test_a_missing_or_mismatched_explainer_is_a_clear_error(tmp_path):
    backbone, tokens = MarkerBackbone(), marked_tokens(2, seed=6)[0]
    with pytest.raises(ValueError, match="no pre-trained explainer"):
        get_explainer("tve")(backbone, tokens)
    save_tve(PatchNet(DIM + 1, EMBED, 8, 1, 2), {"seconds": 1.0}, tmp_path)
    with pytest.raises(ValueError, match="pre-train it for this backbone"):
        get_explainer("tve", weights=str(tmp_path))(backbone, tokens)
    with pytest.raises(ValueError, match="queries must be an even"):
        TVESettings(queries=3)


def test_prepared_artifacts_are_reused_and_reach_the_explainers(tmp_path):
    from tests.core.tiny import tiny_backbone
    from xai_kedro.core.models.classifier import ViTClassifier
    from xai_kedro.core.xai.tve import prepare_learned_explainers, with_artifacts

    backbone = tiny_backbone(0, 0, layers=1, heads=2)
    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    settings = TVESettings(images=16, queries=4, epochs=1, hidden=8, heads=2)
    first = prepare_learned_explainers(tmp_path, backbone, images, "key", settings)
    stamp = (tmp_path / "tve" / "tve.pt").stat().st_mtime_ns
    again = prepare_learned_explainers(tmp_path, backbone, images, "key", settings)
    assert again == first and (tmp_path / "tve" / "tve.pt").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(np.load(first["images"]), images)
    changed = prepare_learned_explainers(
        tmp_path, backbone, images, "key", TVESettings(**{**vars(settings), "seed": 1})
    )
    assert changed["fingerprint"] != first["fingerprint"]
    block = with_artifacts({"tve": None, "dax": {"epochs": 2}, "rise": {"masks": 8}}, first)
    assert block["tve"] == {"weights": str((tmp_path / "tve").resolve())}
    assert block["dax"]["epochs"] == 2 and block["dax"]["images"].endswith("images.npy")
    assert block["rise"] == {"masks": 8}
    model = ViTClassifier(backbone, 3).eval()
    with torch.inference_mode():
        _, heat = get_explainer("tve", **block["tve"])(
            model, model.embed(torch.randn(2, 3, 32, 32))
        )
    assert heat.shape == (2, 16)
