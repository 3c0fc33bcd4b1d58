"""Determinism, exact masks, the spurious correlation and the on-disk dataset of core.synthetic."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from xai_kedro.core.data import synthetic
from xai_kedro.core.data.synthetic import (
    SHAPES,
    TEXTURES,
    SyntheticConfig,
    generate_image,
    render,
    sample_spec,
    write_synthetic_dataset,
)

SMALL = {"pretrain": 2, "train": 5, "val": 2, "test": 3}


def small_config(**kw) -> SyntheticConfig:
    base = {"num_classes": 4, "num_textures": 5, "image_size": 32, "images_per_class": SMALL}
    base.update(kw)
    return SyntheticConfig(**base)


def all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ determinism
def test_same_config_same_arrays():
    cfg = SyntheticConfig(noise=5.0)
    for split, index in [("train", 0), ("test", 17), ("pretrain", 359)]:
        a, b = generate_image(cfg, split, index), generate_image(cfg, split, index)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2:] == b[2:]


def test_image_does_not_depend_on_other_images_or_on_split_sizes():
    cfg = SyntheticConfig()
    bigger = SyntheticConfig(images_per_class={"pretrain": 60, "train": 90, "val": 20, "test": 30})
    a, b = generate_image(cfg, "train", 42), generate_image(bigger, "train", 42)
    np.testing.assert_array_equal(a[0], b[0])


def test_different_seed_or_split_gives_different_images():
    a = generate_image(SyntheticConfig(seed=0), "train", 3)[0]
    b = generate_image(SyntheticConfig(seed=1), "train", 3)[0]
    c = generate_image(SyntheticConfig(seed=0), "val", 3)[0]
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_outputs_have_the_documented_types():
    rgb, mask, label, texture_id = generate_image(SyntheticConfig(image_size=48), "val", 7)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    assert mask.shape == (48, 48) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert label == 7 % 6 and 0 <= texture_id < 8


def test_index_out_of_range_and_unknown_split():
    cfg = small_config()
    with pytest.raises(IndexError, match="out of range"):
        generate_image(cfg, "train", cfg.count("train"))
    with pytest.raises(ValueError, match="unknown split"):
        generate_image(cfg, "holdout", 0)


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize("noise", [0.0, 6.0])
def test_mask_is_exactly_the_drawn_object(noise):
    cfg = SyntheticConfig(noise=noise, num_classes=10, num_textures=12)
    size = cfg.image_size
    for index in range(0, 120, 7):
        spec = sample_spec(cfg, "test", index)
        rgb, mask = render(spec, cfg)
        black, m_black = render(spec, cfg, background=np.zeros((size, size, 3), np.uint8))
        white, m_white = render(spec, cfg, background=np.full((size, size, 3), 255, np.uint8))
        np.testing.assert_array_equal(mask, m_black)
        np.testing.assert_array_equal(mask, m_white)
        changed = (black != white).any(axis=-1)
        np.testing.assert_array_equal(changed, mask == 0)  # only the background moved
        np.testing.assert_array_equal(rgb[mask == 1], black[mask == 1])
        assert 0.02 * size * size < mask.sum() < 0.6 * size * size
        if noise == 0:
            assert (rgb[mask == 1] == spec.object_colour).all()


def test_every_shape_family_draws_a_different_object():
    assert len(SHAPES) >= 8
    cfg = SyntheticConfig(num_classes=len(SHAPES), num_textures=len(SHAPES))
    spec = sample_spec(cfg, "test", 0)
    masks = {name: synthetic.object_mask(spec, 64, name) for name in SHAPES}
    names = list(masks)
    for i, a in enumerate(names):
        assert masks[a].any() and not masks[a].all()
        for b in names[i + 1 :]:
            assert (masks[a] != masks[b]).sum() > 20, (a, b)


def test_object_stays_inside_the_frame():
    cfg = SyntheticConfig(scale_range=(0.4, 0.45), position_jitter=0.5)
    for index in range(0, 200, 11):
        mask = generate_image(cfg, "train", index)[1]
        assert mask.sum() > 0
        # The circumscribed circle fits, so a border row/column is never fully covered.
        assert mask[0].sum() < 64 and mask[-1].sum() < 64


# ------------------------------------------------------------------ textures and the shortcut
def test_full_spurious_correlation_ties_train_textures_only():
    cfg = SyntheticConfig(spurious_correlation=1.0, num_textures=8)
    train = [generate_image(cfg, "train", i) for i in range(cfg.count("train"))]
    assert all(t == label for _, _, label, t in train)
    test = pd.DataFrame(
        [generate_image(cfg, "test", i)[2:] for i in range(cfg.count("test"))],
        columns=["label", "texture"],
    )
    assert (test["label"] == test["texture"]).mean() < 0.35  # ~1/8 when unbiased
    assert test.groupby("label")["texture"].nunique().min() >= 4
    assert test["texture"].nunique() == 8  # the non-class textures appear too


def test_no_spurious_correlation_means_spread_train_textures():
    cfg = SyntheticConfig(spurious_correlation=0.0)
    pairs = [generate_image(cfg, "train", i)[2:] for i in range(cfg.count("train"))]
    assert np.mean([label == t for label, t in pairs]) < 0.35


def test_textures_are_fragile_under_blur():
    """Blur wipes most detail of every default texture but leaves the object's silhouette."""
    cfg = SyntheticConfig(spurious_correlation=0.0)  # default bank: the 8 high-frequency textures
    kept_texture: dict[int, list[float]] = {}
    kept_shape = []
    for index in range(cfg.count("test")):
        spec = sample_spec(cfg, "test", index)
        rgb, mask = render(spec, cfg)
        blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(2))).astype(float)
        back = mask == 0
        before = spec.texture.astype(float)[back].std(axis=0).mean()
        after = blurred[back].std(axis=0).mean()
        kept_texture.setdefault(spec.texture_id, []).append(after / max(before, 1e-6))
        contrast_before = np.abs(np.subtract(spec.object_colour, spec.texture[back].mean(axis=0)))
        contrast_after = np.abs(blurred[mask == 1].mean(axis=0) - blurred[back].mean(axis=0))
        kept_shape.append(contrast_after.max() / max(contrast_before.max(), 1e-6))
    assert len(kept_texture) == cfg.num_textures
    for texture_id, ratios in kept_texture.items():
        assert np.median(ratios) < 0.45, (texture_id, TEXTURES[texture_id])
    assert np.median(kept_shape) > 0.6


def test_texture_id_is_the_pattern_not_the_colours():
    cfg = SyntheticConfig(spurious_correlation=1.0)
    a = sample_spec(cfg, "train", 0)  # label 0 -> texture 0
    b = sample_spec(cfg, "train", 6)  # label 0 -> texture 0
    assert a.texture_id == b.texture_id == 0
    assert not np.array_equal(a.texture, b.texture)


# ------------------------------------------------------------------ config
def test_config_roundtrip_and_fingerprint():
    cfg = SyntheticConfig(seed=7, scale_range=(0.2, 0.3))
    d = cfg.to_dict()
    json.dumps(d)  # JSON friendly
    again = SyntheticConfig.from_params(d)
    assert again == cfg and again.fingerprint() == cfg.fingerprint()
    assert len(cfg.fingerprint()) == 16
    assert SyntheticConfig(seed=8).fingerprint() != SyntheticConfig(seed=7).fingerprint()
    assert SyntheticConfig().fingerprint() == SyntheticConfig().fingerprint()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"num_classes": 99}, "num_classes"),
        ({"num_classes": 6, "num_textures": 5}, "num_textures"),
        ({"spurious_correlation": 1.5}, "spurious_correlation"),
        ({"images_per_class": {"holdout": 3}}, "unknown splits"),
        ({"scale_range": (0.4, 0.1)}, "scale_range"),
        ({"noise": -1}, "noise"),
    ],
)
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**kw)


def test_from_params_rejects_unknown_keys():
    with pytest.raises(
        ValueError, match=r"unknown setting ingestion\.source\.synthetic\.num_clases; allowed under"
    ):
        SyntheticConfig.from_params({"num_clases": 4})


# ------------------------------------------------------------------ dataset on disk
def test_written_dataset_layout_and_counts(tmp_path):
    cfg = small_config()
    manifest = write_synthetic_dataset(tmp_path, cfg)
    assert list(manifest.columns) == list(synthetic.MANIFEST_COLUMNS)
    assert len(manifest) == sum(SMALL.values()) * 4
    counts = manifest.groupby(["split", "label"]).size()
    for (split, _label), n in counts.items():
        assert n == SMALL[split]
    assert set(manifest["label_name"]) == set(cfg.class_names)
    row = manifest.iloc[0]
    assert row["rel_path"] == f"images/{row['label_name']}/{row['split']}_00000.png"
    img = np.asarray(Image.open(tmp_path / row["rel_path"]))
    mask = np.asarray(Image.open(tmp_path / row["mask_rel_path"]))
    rgb, m, label, texture = generate_image(cfg, row["split"], 0)
    np.testing.assert_array_equal(img, rgb)
    np.testing.assert_array_equal(mask, m * 255)
    assert set(np.unique(mask)) == {0, 255}
    assert (label, texture) == (row["label"], row["texture_id"])
    meta = json.loads((tmp_path / "manifest.json").read_text())
    assert meta["fingerprint"] == cfg.fingerprint()


def test_byte_identical_output(tmp_path):
    cfg = small_config()
    write_synthetic_dataset(tmp_path / "a", cfg)
    write_synthetic_dataset(tmp_path / "b", cfg)
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert a.keys() == b.keys() and a == b


def test_second_call_skips_generation(tmp_path, monkeypatch):
    cfg = small_config()
    first = write_synthetic_dataset(tmp_path, cfg)

    def boom(*args, **kwargs):
        raise AssertionError("must not regenerate an up-to-date dataset")

    monkeypatch.setattr(synthetic, "generate_image", boom)
    pd.testing.assert_frame_equal(write_synthetic_dataset(tmp_path, cfg), first)


def test_changed_config_regenerates_and_removes_stale_files(tmp_path):
    write_synthetic_dataset(tmp_path, small_config())
    smaller = small_config(images_per_class={"train": 1, "test": 1})
    manifest = write_synthetic_dataset(tmp_path, smaller)
    assert len(manifest) == 8
    on_disk = sorted(
        p.relative_to(tmp_path).as_posix() for p in (tmp_path / "images").rglob("*.png")
    )
    assert on_disk == sorted(manifest["rel_path"])
    assert (
        json.loads((tmp_path / "manifest.json").read_text())["fingerprint"] == smaller.fingerprint()
    )


def test_interrupted_run_is_regenerated(tmp_path, monkeypatch):
    cfg = small_config()
    real = synthetic.generate_image
    calls = {"n": 0}

    def dies_midway(*args):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*args)

    write_synthetic_dataset(tmp_path / "clean", cfg)
    write_synthetic_dataset(tmp_path / "run", small_config(seed=5))  # an older, complete dataset
    monkeypatch.setattr(synthetic, "generate_image", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_dataset(tmp_path / "run", cfg)
    assert not (tmp_path / "run" / "manifest.json").exists()
    monkeypatch.setattr(synthetic, "generate_image", real)
    write_synthetic_dataset(tmp_path / "run", cfg)
    assert all_files(tmp_path / "run") == all_files(tmp_path / "clean")


def test_default_config_is_fast(tmp_path):
    start = time.perf_counter()
    manifest = write_synthetic_dataset(tmp_path, SyntheticConfig())
    elapsed = time.perf_counter() - start
    assert len(manifest) == 6 * (60 + 60 + 20 + 30)
    assert elapsed < 20, f"default dataset took {elapsed:.1f}s"
