"""Every registered backbone family, on a tiny random checkpoint saved with `save_pretrained`.

Parametrised over the registry: adding a family to `core.models.families.BACKBONES` without a
checkpoint builder here fails `test_every_family_has_a_tiny_checkpoint`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from peft.tuners.lora import LoraLayer

from xai_kedro.core.adapters import AdapterConfig, attach_adapter, resolve_target_modules
from xai_kedro.core.models.backbone import load_backbone
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.models.families import BACKBONES, family_for_model_type, preprocessing
from xai_kedro.core.xai.attention import (
    capture_layer_inputs,
    last_layer_cls_attention,
    patch_heatmap,
    rollout_from_inputs,
    rollout_matrix,
)
from xai_kedro.core.xai.engine import compute_xai
from xai_kedro.core.xai.explainers import EXPLAINERS, get_explainer
from xai_kedro.core.xai.gradient import gradient_attention_explainer
from xai_kedro.core.xai.references import eager_copy, eager_last_layer_attention
from xai_kedro.core.xai.settings import XAIConfig
from xai_kedro.core.xai.tve import TVESettings, prepare_learned_explainers

SHAPE = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    image_size=32,
    patch_size=8,
    initializer_range=0.3,  # attention far from uniform, so the comparison means something
)
# family -> (model class, config class, extra config); each saved with save_pretrained
CHECKPOINTS = {
    "dinov2": ("Dinov2Model", "Dinov2Config", {"mlp_ratio": 2}),
    "dinov2_with_registers": (
        "Dinov2WithRegistersModel",
        "Dinov2WithRegistersConfig",
        {"mlp_ratio": 2, "num_register_tokens": 2},
    ),
    "vit": ("ViTModel", "ViTConfig", {}),
    "deit": ("DeiTModel", "DeiTConfig", {}),
    "clip_vision": ("CLIPVisionModel", "CLIPVisionConfig", {}),
    "siglip_vision": ("SiglipVisionModel", "SiglipVisionConfig", {}),
}
PREFIX = {
    "dinov2": ("cls",),
    "dinov2_with_registers": ("cls", "register", "register"),
    "vit": ("cls",),
    "deit": ("cls", "distillation"),
    "clip_vision": ("cls",),
    "siglip_vision": (),
}
ROLES = ("query", "key", "value", "output", "fc1", "fc2")
NUM_CLASSES = 3


def save_tiny(family: str, directory) -> str:
    model_cls, config_cls, extra = CHECKPOINTS[family]
    shape = {
        k: v for k, v in SHAPE.items() if not (k == "intermediate_size" and "mlp_ratio" in extra)
    }
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**shape, **extra)
    getattr(transformers, model_cls)(config).save_pretrained(str(directory))
    return str(directory)


@pytest.fixture(scope="module", params=BACKBONES.names())
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def classifier(family, tmp_path_factory) -> ViTClassifier:
    source = save_tiny(family, tmp_path_factory.mktemp(family))
    torch.manual_seed(1)
    return ViTClassifier(load_backbone(source), NUM_CLASSES).eval()


def pixels(n: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_every_family_has_a_tiny_checkpoint():
    assert set(BACKBONES.names()) == set(CHECKPOINTS)


def test_family_declares_its_prefix_tokens(family, classifier):
    assert classifier.family.name == family
    assert classifier.family.prefix_tokens(classifier.backbone.config) == PREFIX[family]
    tokens = classifier.embed(pixels())
    assert tokens.shape[1] == len(PREFIX[family]) + classifier.num_patches


def test_heatmap_equals_the_eager_output_attentions_reference(classifier):
    x = pixels()
    with torch.inference_mode():
        _, last_input = classifier.encode(classifier.embed(x), return_last_input=True)
        direct = last_layer_cls_attention(classifier, last_input)
    reference = eager_last_layer_attention(classifier, x)
    assert direct.shape == (3, classifier.num_patches)
    torch.testing.assert_close(direct, reference, rtol=1e-4, atol=1e-6)


def test_rollout_equals_the_eager_reference(classifier):
    x = pixels()
    eager = eager_copy(classifier)
    with torch.inference_mode():
        with capture_layer_inputs(classifier) as inputs:
            classifier(x)
        direct = rollout_from_inputs(classifier, inputs)
        attns = eager.backbone(pixel_values=x, output_attentions=True).attentions
    rollout = rollout_matrix([a.float().mean(dim=1) for a in attns])
    rows = rollout[:, 0] if classifier.family.has_cls else rollout.mean(dim=1)
    torch.testing.assert_close(
        direct, patch_heatmap(rows[:, None], classifier.n_prefix), rtol=1e-4, atol=1e-6
    )


def test_forward_matches_the_backbone_own_forward(classifier):
    """embed -> encode reproduces the model's own last hidden state (before the final norm)."""
    x = pixels()
    with torch.inference_mode():
        own = classifier.backbone(pixel_values=x).last_hidden_state
        tokens = classifier.encode(classifier.embed(x))
    final = classifier.family.final_layernorm(classifier.backbone)
    if classifier.family.name in ("clip_vision",):  # CLIP's last_hidden_state is not normed
        own = final(own)
    torch.testing.assert_close(tokens, own, rtol=1e-5, atol=1e-5)


def test_gradient_explainer_runs(classifier):
    tokens = classifier.embed(pixels())
    logits, heat = gradient_attention_explainer(classifier, tokens)
    assert logits.shape == (3, NUM_CLASSES)
    assert heat.shape == (3, classifier.num_patches) and torch.isfinite(heat).all()


# Small settings: the explainers' shapes and finiteness on every family, not their quality.
QUICK_SETTINGS = {"rise": {"masks": 8}, "learned_mask": {"queries": 8, "steps": 3}}


@pytest.fixture(scope="module")
def learned(family, classifier, tmp_path_factory) -> dict[str, dict[str, str | int]]:
    """Quick TVE and DAX artifacts for this family's backbone (widths differ per family)."""
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    quick = TVESettings(images=8, queries=4, epochs=1, batch_size=4)
    folder = tmp_path_factory.mktemp(f"{family}_explainers")
    made = prepare_learned_explainers(folder, classifier.backbone, images, family, quick)
    return {
        "tve": {"weights": made["tve"]},
        "dax": {"images": made["images"], "queries": 4, "epochs": 1, "batch_size": 4},
    }


@pytest.mark.parametrize("explainer", EXPLAINERS.names())
def test_every_registered_explainer_runs_on_every_family(classifier, learned, explainer):
    settings = {**QUICK_SETTINGS.get(explainer, {}), **learned.get(explainer, {})}
    explain = get_explainer(explainer, **settings)
    with torch.inference_mode():  # as the engine calls every explainer
        logits, heat = explain(classifier, classifier.embed(pixels()))
    assert logits.shape == (3, NUM_CLASSES)
    assert heat.shape == (3, classifier.num_patches) and torch.isfinite(heat).all()


@pytest.mark.parametrize("perturbation", ["token_drop", "pixel"])
def test_curves_run_and_never_drop_prefix_tokens(classifier, perturbation):
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    config = XAIConfig(steps=4, perturbation=perturbation, batch_size=3, keep_heatmap=True)
    frame = compute_xai(classifier, images, [0, 1, 2], None, config)
    assert len(frame) == 3
    assert np.isfinite(frame["deletion_auc"]).all() and np.isfinite(frame["insertion_auc"]).all()
    assert all(len(h) == classifier.num_patches for h in frame["heatmap"])


@pytest.mark.parametrize("variant", [{}, {"use_dora": True}, {"use_rslora": True}])
def test_adapter_attaches_to_exactly_the_declared_modules_and_trains(family, tmp_path, variant):
    torch.manual_seed(1)
    model = ViTClassifier(load_backbone(save_tiny(family, tmp_path / "bb")), NUM_CLASSES)
    declared = BACKBONES.get(family).roles
    cfg = AdapterConfig.from_params(
        {"adapter_id": "a", "rank": 2, "alpha": "2r", "target_roles": list(ROLES), **variant}
    )
    attach_adapter(model, cfg)
    wrapped = sorted(n for n, m in model.backbone.named_modules() if isinstance(m, LoraLayer))
    assert wrapped == sorted(resolve_target_modules(model.backbone, ROLES))
    assert len(wrapped) == len(ROLES) * SHAPE["num_hidden_layers"]
    suffixes = {s for names in declared.values() for s in names}
    assert all(any(n.endswith("." + s) for s in suffixes) for n in wrapped)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    before = [p.detach().clone() for p in lora_b]
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(pixels()), torch.tensor([0, 1, 2]))
    loss.backward()
    optimiser.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, lora_b, strict=True))


def test_full_clip_checkpoint_loads_its_vision_tower(tmp_path):
    torch.manual_seed(0)
    vision = {k: v for k, v in SHAPE.items()}
    text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config = transformers.CLIPConfig(vision_config=vision, text_config=text, projection_dim=16)
    full = transformers.CLIPModel(config)
    full.save_pretrained(str(tmp_path / "clip"))
    backbone = load_backbone(str(tmp_path / "clip"))
    assert family_for_model_type(backbone.config.model_type).name == "clip_vision"
    x = pixels()
    with torch.inference_mode():
        torch.testing.assert_close(
            backbone(pixel_values=x).pooler_output,
            full.vision_model(pixel_values=x).pooler_output,
        )


def test_preprocessor_config_gives_normalisation_and_size(tmp_path):
    family = BACKBONES.get("clip_vision")
    assert preprocessing(tmp_path, family)["mean"] == family.mean
    (tmp_path / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "crop_size": {"height": 224}}'
    )
    out = preprocessing(tmp_path, family)
    assert out == {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "size": 224}
