"""The batched XAI engine against its plain one-image, one-step reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from tests.core.tiny import fp32_on_cuda, needs_cuda, tiny_backbone
from xai_kedro.core.data.preprocessing import IMAGENET_MEAN, normalise, to_model_input
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai import engine as xai_engine
from xai_kedro.core.xai.columns import XAI_COLUMNS
from xai_kedro.core.xai.curves import separable_gaussian_blur, step_counts
from xai_kedro.core.xai.engine import compute_xai, explain_chunk
from xai_kedro.core.xai.metrics import attention_entropy, gini, object_attention_share
from xai_kedro.core.xai.references import reference_deletion_insertion
from xai_kedro.core.xai.settings import XAIConfig

N_PATCHES = 16  # 32 px / patch 8


def tiny_model(registers: int = 0, seed: int = 0) -> ViTClassifier:
    """Larger init and head so attention and probabilities react to perturbation."""
    backbone = tiny_backbone(registers, seed, heads=4, init=0.25)
    model = ViTClassifier(backbone, num_classes=4).eval()
    with torch.no_grad():
        model.head.weight.mul_(8.0)
    return model


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    images[:, 8:24, 8:24] = rng.integers(0, 256, (6, 1, 1, 3), dtype=np.uint8)  # a flat "object"
    labels = rng.integers(0, 4, 6)
    masks = np.zeros((6, 40, 40), dtype=np.uint8)
    masks[:, 8:24, 8:24] = 1
    return images, labels, masks


def probs_of(model: ViTClassifier, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=-1).gather(1, target[:, None])[:, 0]


CONFIGS = [
    dict(perturbation="token_drop", target="label"),
    dict(perturbation="token_drop", target="predicted"),
    dict(perturbation="pixel", target="label", pixel_baseline="mean"),
    dict(perturbation="pixel", target="predicted", pixel_baseline="blur", blur_sigma=2.0),
]


@pytest.mark.parametrize("settings", CONFIGS, ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("registers", [0, 2])
def test_auc_matches_reference(settings, registers, data):
    images, labels, _ = data
    model = tiny_model(registers)
    config = XAIConfig(steps=5, keep_heatmap=True, batch_size=4, **settings)
    frame = compute_xai(model, images, labels, None, config)
    spread = []
    for i in range(4):
        deletion, insertion = reference_deletion_insertion(
            model, images[i], labels[i], frame["heatmap"][i], config
        )
        assert frame["deletion_auc"][i] == pytest.approx(deletion, rel=1e-5, abs=1e-5)
        assert frame["insertion_auc"][i] == pytest.approx(insertion, rel=1e-5, abs=1e-5)
        spread.append(deletion)
    assert np.ptp(spread) > 1e-3  # the curves carry signal, so a wrong order would show


def test_rollout_explainer_matches_reference(data):
    images, labels, _ = data
    model = tiny_model(registers=1)
    config = XAIConfig(steps=4, explainer="rollout", keep_heatmap=True)
    frame = compute_xai(model, images[:3], labels[:3], None, config)
    for i in range(3):
        deletion, insertion = reference_deletion_insertion(
            model, images[i], labels[i], frame["heatmap"][i], config
        )
        assert frame["deletion_auc"][i] == pytest.approx(deletion, rel=1e-5, abs=1e-5)
        assert frame["insertion_auc"][i] == pytest.approx(insertion, rel=1e-5, abs=1e-5)


def test_token_drop_curves_behave_as_defined(data):
    images, labels, _ = data
    model = tiny_model(registers=2)
    k_steps = 4
    result = explain_chunk(model, images, labels, XAIConfig(steps=k_steps))
    p_clean = probs_of(model, result.logits, result.target).double()
    torch.testing.assert_close(result.deletion[:, 0], p_clean, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.insertion[:, -1], p_clean, atol=1e-6, rtol=0)
    assert ((result.deletion >= 0) & (result.deletion <= 1)).all()
    # no patch left: the same input for both curves, each image's own blurred copy
    torch.testing.assert_close(result.deletion[:, -1], result.insertion[:, 0])
    x = to_model_input(torch.from_numpy(images), 32)
    with torch.inference_mode():
        blurred = probs_of(model, model(separable_gaussian_blur(x, 5.0)), result.target)
        torch.testing.assert_close(result.insertion[:, 0], blurred.double(), atol=1e-6, rtol=0)
        tokens = model.embed(x)
        p = model.n_prefix
        # one step by hand: deletion k=1 and insertion k=3 gather their subsets of the embedding
        n = step_counts(N_PATCHES, k_steps)
        for b in range(len(images)):
            order = np.argsort(-result.heatmap[b].numpy(), kind="stable")
            kept_del = torch.tensor(np.sort(order[n[1] :])) + p
            kept_ins = torch.tensor(np.sort(order[: n[3]])) + p
            seq_del = torch.cat([tokens[b : b + 1, :p], tokens[b : b + 1, kept_del]], dim=1)
            seq_ins = torch.cat([tokens[b : b + 1, :p], tokens[b : b + 1, kept_ins]], dim=1)
            t = result.target[b : b + 1]
            p_del = probs_of(model, model.forward_tokens(seq_del), t).double()
            p_ins = probs_of(model, model.forward_tokens(seq_ins), t).double()
            assert result.deletion[b, 1].item() == pytest.approx(p_del.item(), abs=1e-6)
            assert result.insertion[b, 3].item() == pytest.approx(p_ins.item(), abs=1e-6)


def test_prefix_only_endpoint_is_one_constant_for_every_image(data):
    """The biased legacy endpoint: CLS + registers alone is the same input for every image."""
    images, labels, _ = data
    model = tiny_model(registers=2)
    config = XAIConfig(steps=4, empty_input="prefix_only", target="label")
    result = explain_chunk(model, images, np.zeros_like(labels), config)
    x = to_model_input(torch.from_numpy(images), 32)
    with torch.inference_mode():
        tokens = model.embed(x)
        empty = probs_of(model, model.forward_tokens(tokens[:, : model.n_prefix]), result.target)
    torch.testing.assert_close(result.insertion[:, 0], empty.double(), atol=1e-6, rtol=0)
    assert np.ptp(result.insertion[:, 0].numpy()) < 1e-9  # one constant shared by all images


def test_empty_endpoint_is_shared_only_by_images_with_the_same_blurred_input(data):
    images, labels, _ = data
    model = tiny_model(registers=1)
    twins = np.stack([images[0], images[0], images[1]])
    result = explain_chunk(model, twins, labels[[0, 0, 0]], XAIConfig(steps=4, target="label"))
    ends = result.insertion[:, 0]
    assert ends[0].item() == pytest.approx(ends[1].item(), abs=1e-9)  # same blurred input
    assert abs(ends[0].item() - ends[2].item()) > 1e-4  # another image, another endpoint
    torch.testing.assert_close(result.deletion[:, -1], ends)


def test_curves_are_bounded_when_the_clean_probability_is_tiny(data):
    """A clean mistake with p(target) ~ 1e-6: the raw curves and the bounded reference ratio
    stay in [0, 1], where the unclipped ratio p_k / p_clean would reach the thousands."""
    images, labels, _ = data
    model = tiny_model()
    with torch.no_grad():
        model.head.weight.mul_(12.0)  # very confident logits
    x = to_model_input(torch.from_numpy(images), 32)
    with torch.inference_mode():
        probs = torch.softmax(model(x).float(), dim=-1)
    least = probs.argmin(dim=1).numpy()
    assert probs.min(dim=1).values.max() < 1e-4
    config = XAIConfig(steps=4, target="label")
    frame = compute_xai(model, images, least, None, config)
    result = explain_chunk(model, images, least, config)
    for column in ("deletion_auc", "insertion_auc", "deletion_ratio_auc"):
        assert frame[column].between(0.0, 1.0).all(), column
    ratio = result.deletion / result.deletion[:, :1]
    assert ratio.max() > 10  # the unbounded form really would explode here


def test_areas_use_the_true_removed_fraction(data):
    """N = 16, K = 3: step k removes round(16 k / 3) = 0, 5, 11, 16 patches, so the area is taken
    at x = 0, 5/16, 11/16, 1 and not at k / K = 0, 1/3, 2/3, 1."""
    images, labels, _ = data
    model = tiny_model()
    config = XAIConfig(steps=3)
    result = explain_chunk(model, images, labels, config)
    frame = compute_xai(model, images, labels, None, config)
    xs = np.array([0, 5, 11, 16]) / 16
    np.testing.assert_allclose(result.fractions.numpy(), xs)
    want = np.trapezoid(result.deletion.numpy(), xs, axis=1)
    np.testing.assert_allclose(frame["deletion_auc"], want, atol=1e-9)
    uniform = np.trapezoid(result.deletion.numpy(), np.linspace(0, 1, 4), axis=1)
    assert np.abs(uniform - want).max() > 1e-4


def test_pixel_mean_baseline_shows_the_mean_colour_in_removed_patches(data):
    images, labels, _ = data
    model = tiny_model()
    config = XAIConfig(steps=4, perturbation="pixel", empty_input="prefix_only")
    result = explain_chunk(model, images, labels, config)
    mean_image = normalise(torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(6, 3, 32, 32) * 255)
    with torch.inference_mode():
        want = probs_of(model, model(mean_image), result.target).double()
    # legacy endpoint in pixel mode: every patch removed = the constant mean image
    torch.testing.assert_close(result.deletion[:, -1], want, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.insertion[:, 0], want, atol=1e-6, rtol=0)
    blurred = explain_chunk(model, images, labels, XAIConfig(steps=4, perturbation="pixel"))
    assert (blurred.insertion[:, 0] - want).abs().max() > 1e-4  # default: the blurred image


def test_pixel_blur_baseline_uses_the_blurred_image(data):
    images, labels, _ = data
    model = tiny_model()
    config = XAIConfig(steps=3, perturbation="pixel", pixel_baseline="blur", blur_sigma=2.0)
    result = explain_chunk(model, images, labels, config)
    x = to_model_input(torch.from_numpy(images), 32)
    with torch.inference_mode():
        want = probs_of(model, model(separable_gaussian_blur(x, 2.0)), result.target).double()
        mean = probs_of(model, model(torch.zeros_like(x)), result.target).double()
    torch.testing.assert_close(result.insertion[:, 0], want, atol=1e-6, rtol=0)
    assert (result.insertion[:, 0] - mean).abs().max() > 1e-4


def test_gaussian_blur_matches_scipy():
    x = torch.rand(2, 3, 20, 24)
    got = separable_gaussian_blur(x, sigma=1.5, truncate=3.0).numpy()
    want = np.stack(
        [
            np.stack(
                [
                    gaussian_filter(x[b, c].numpy(), 1.5, mode="mirror", truncate=3.0)
                    for c in range(3)
                ]
            )
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("perturbation", ["token_drop", "pixel"])
def test_batching_invariance(perturbation, data):
    images, labels, masks = data
    model = tiny_model(registers=1)
    one = compute_xai(model, images, labels, masks, XAIConfig(steps=6, perturbation=perturbation))
    config = XAIConfig(steps=6, perturbation=perturbation, batch_size=2, max_batch_tokens=40)
    chunks = compute_xai(model, images, labels, masks, config)
    numeric = [c for c in XAI_COLUMNS if c != "heatmap"]
    np.testing.assert_allclose(
        one[numeric].to_numpy(float), chunks[numeric].to_numpy(float), rtol=1e-5, atol=1e-5
    )


def test_forwards_are_batched_per_token_count(data, monkeypatch):
    """token_drop: one clean pass + one forward per distinct kept count; pixel: 1 + 1."""
    images, labels, _ = data
    model = tiny_model()
    calls: list[tuple[int, int]] = []
    encode = model.encode

    def counting_encode(tokens, return_last_input=False):
        calls.append(tuple(tokens.shape[:2]))
        return encode(tokens, return_last_input=return_last_input)

    monkeypatch.setattr(model, "encode", counting_encode)
    explain_chunk(model, images, labels, XAIConfig(steps=4))
    # N=16, K=4: kept counts 12, 8, 4 pair deletion with insertion; the empty step shared by
    # both curves is one full forward of the blurred chunk
    assert sorted(calls) == [(6, 17), (6, 17), (12, 5), (12, 9), (12, 13)]
    calls.clear()
    explain_chunk(model, images, labels, XAIConfig(steps=4, perturbation="pixel"))
    assert calls == [(6, 17), (6, 17), (6 * 6, 17)]  # clean, blurred, 2K - 2 perturbed copies


def test_object_share_and_heatmap_columns(data):
    images, labels, masks = data
    model = tiny_model()
    config = XAIConfig(steps=2, keep_heatmap=True)
    frame = compute_xai(model, images, labels, masks, config)
    heat = np.stack(frame["heatmap"])
    assert heat.dtype == np.float32 and heat.shape == (6, N_PATCHES)
    np.testing.assert_allclose(heat.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(frame["attn_entropy"], attention_entropy(heat).numpy(), atol=1e-6)
    np.testing.assert_allclose(frame["gini"], gini(heat).numpy(), atol=1e-6)
    want = object_attention_share(heat, masks, 4).numpy()
    np.testing.assert_allclose(frame["object_attention_share"], want, atol=1e-6)
    assert ((want > 0) & (want < 1)).all()
    full = compute_xai(model, images[:2], labels[:2], np.ones((2, 40, 40), np.uint8), config)
    np.testing.assert_allclose(full["object_attention_share"], 1.0, atol=1e-6)
    mixed = compute_xai(model, images[:2], labels[:2], [None, masks[1]], config)
    assert np.isnan(mixed["object_attention_share"][0])
    assert mixed["object_attention_share"][1] == pytest.approx(want[1], abs=1e-6)
    plain = compute_xai(model, images[:2], labels[:2], None, XAIConfig(steps=2))
    assert plain["object_attention_share"].isna().all()
    assert plain["heatmap"].isna().all()


def test_columns_targets_and_row_order(data):
    images, labels, _ = data
    model = tiny_model()
    frame = compute_xai(model, images, labels, None, XAIConfig(steps=3))
    assert list(frame.columns) == XAI_COLUMNS
    np.testing.assert_array_equal(frame["label"], labels)
    np.testing.assert_array_equal(frame["target_class"], frame["pred"])  # label-free default
    assert frame["is_correct"].dtype == bool
    rev = compute_xai(model, images[::-1], labels[::-1], None, XAIConfig(steps=3))
    np.testing.assert_allclose(rev["deletion_auc"][::-1], frame["deletion_auc"], atol=1e-6)
    by_label = compute_xai(model, images, labels, None, XAIConfig(steps=3, target="label"))
    np.testing.assert_array_equal(by_label["target_class"], labels)


def test_step_counts():
    assert step_counts(16, 4) == [0, 4, 8, 12, 16]
    assert step_counts(16, 5) == [0, 3, 6, 10, 13, 16]  # 3.2 6.4 9.6 12.8
    assert step_counts(3, 2) == [0, 2, 3]  # 1.5 rounds up
    counts = step_counts(10, 16)
    assert counts[0] == 0 and counts[-1] == 10 and counts == sorted(counts)


def test_config_validation_and_bad_input(data):
    images, labels, _ = data
    assert XAIConfig.from_params(None) == XAIConfig()
    assert XAIConfig.from_params({"steps": 8}).steps == 8
    with pytest.raises(
        ValueError,
        match=r"unknown setting xai_silver\.engine\.step; allowed under xai_silver\.engine",
    ):
        XAIConfig.from_params({"step": 8})
    with pytest.raises(ValueError, match="perturbation"):
        XAIConfig(perturbation="grey")
    with pytest.raises(ValueError, match="steps"):
        XAIConfig(steps=0)
    model = tiny_model()
    with pytest.raises(ValueError, match="labels"):
        compute_xai(model, images, labels[:3])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        compute_xai(model, images, np.full(6, 9))
    model.train()
    with pytest.raises(ValueError, match="eval mode"):
        compute_xai(model, images, labels)


# --- CUDA (run on a GPU machine: scripts/gpu_check.sh; skipped in CI) ------------------------


@needs_cuda
@pytest.mark.parametrize("perturbation", ["token_drop", "pixel"])
def test_cuda_fp32_reproduces_the_cpu_rows(perturbation, data, monkeypatch):
    """Index logic on the GPU (gathers, sorts, masks): fp32 CUDA gives the CPU's rows."""
    fp32_on_cuda(monkeypatch, xai_engine)
    images, labels, masks = data
    model = tiny_model(registers=1)
    config = XAIConfig(steps=6, perturbation=perturbation, keep_heatmap=True, batch_size=4)
    cpu = compute_xai(model, images, labels, masks, config, "cpu")
    gpu = compute_xai(copy.deepcopy(model).cuda(), images, labels, masks, config, "cuda")
    numeric = [c for c in XAI_COLUMNS if c != "heatmap"]
    np.testing.assert_allclose(
        gpu[numeric].to_numpy(float), cpu[numeric].to_numpy(float), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(np.stack(gpu["heatmap"]), np.stack(cpu["heatmap"]), atol=1e-5)


@needs_cuda
def test_cuda_bf16_stays_near_cpu_fp32(data):
    """The production path (bf16 autocast): same predictions and profiles within bf16 error."""
    images, labels, masks = data
    model = tiny_model(registers=1)
    config = XAIConfig(steps=6, target="predicted")
    cpu = compute_xai(model, images, labels, masks, config, "cpu")
    gpu = compute_xai(copy.deepcopy(model).cuda(), images, labels, masks, config, "cuda")
    sure = cpu["margin"].to_numpy() > 0.05  # a bf16 near-tie may flip the predicted class
    assert sure.sum() >= 3
    np.testing.assert_array_equal(gpu["pred"][sure], cpu["pred"][sure])
    tolerances = {
        "confidence": 0.02,
        "attn_entropy": 0.05,
        "gini": 0.05,
        "object_attention_share": 0.05,
        "insertion_auc": 0.05,
        "deletion_auc": 0.1,
    }
    for column, atol in tolerances.items():
        np.testing.assert_allclose(gpu[column][sure], cpu[column][sure], atol=atol, err_msg=column)
