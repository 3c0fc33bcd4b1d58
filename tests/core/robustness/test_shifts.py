"""The shift registry: background and ImageNet-C families, deterministic and exact."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from xai_kedro.core.common.registry import UnknownNameError
from xai_kedro.core.data.shapes import TEXTURES
from xai_kedro.core.data.synthetic import SyntheticConfig, generate_image
from xai_kedro.core.robustness.background import GRID_CELLS, confuser, novel_texture_ids
from xai_kedro.core.robustness.imagenet_c import IMAGENET_C_SHIFTS, SEEDED_BY_ARGUMENT
from xai_kedro.core.robustness.shifts import (
    ShiftContext,
    ShiftSpec,
    apply_shift,
    build_shift_specs,
    load_world,
    shift_entry,
    shift_images,
    shift_names,
    shift_seed,
)

WORLD = SyntheticConfig(image_size=48, num_classes=6, seed=3)


def _sample(index: int = 4) -> tuple[np.ndarray, np.ndarray, int]:
    rgb, mask, label, _ = generate_image(WORLD, "test", index)
    return rgb, mask, label


def _spec(shift: str, value: float, severity: str = "s") -> ShiftSpec:
    return ShiftSpec(shift_entry(shift).family, shift, severity, value)


def test_registry_has_both_families_and_all_19_corruptions() -> None:
    names = shift_names()
    assert {"counter_biased", "novel_texture"} <= set(names)
    assert set(IMAGENET_C_SHIFTS) <= set(names)
    assert len(IMAGENET_C_SHIFTS) == 19
    assert shift_entry("counter_biased").family == "background"
    assert shift_entry("jpeg_compression").family == "imagenet_c"
    with pytest.raises(UnknownNameError, match="ood.shifts"):
        shift_entry("rain")


@pytest.mark.parametrize("shift", ["counter_biased", "novel_texture"])
@pytest.mark.parametrize("value", [0.25, 0.5, 1.0])
def test_background_shift_keeps_object_pixels_shape_dtype_and_is_deterministic(
    shift: str, value: float
) -> None:
    rgb, mask, label = _sample()
    context = ShiftContext(mask, label, WORLD)
    out = apply_shift(_spec(shift, value), rgb, 123, context)
    again = apply_shift(_spec(shift, value), rgb, 123, context)
    other = apply_shift(_spec(shift, value), rgb, 124, context)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, again)
    obj = mask != 0
    np.testing.assert_array_equal(out[obj], rgb[obj])  # the object, by its mask, is untouched
    assert (out[~obj] != rgb[~obj]).any()
    assert not np.array_equal(out, other)


@pytest.mark.parametrize("shift", ["counter_biased", "novel_texture"])
def test_background_severity_zero_is_identity_and_fraction_grows(shift: str) -> None:
    rgb, mask, label = _sample()
    context = ShiftContext(mask, label, WORLD)
    np.testing.assert_array_equal(apply_shift(_spec(shift, 0.0), rgb, 9, context), rgb)
    changed = [
        (apply_shift(_spec(shift, v), rgb, 9, context) != rgb).any(-1).mean()
        for v in (0.25, 0.5, 1.0)
    ]
    assert changed[0] < changed[1] < changed[2]


def test_counter_biased_uses_the_confusers_texture_and_novel_an_unused_one() -> None:
    assert confuser(0, WORLD) == 1 and confuser(5, WORLD) == 0
    assert novel_texture_ids(WORLD) == list(range(WORLD.num_textures, len(TEXTURES)))
    assert novel_texture_ids(None) == list(range(len(TEXTURES)))
    full = SyntheticConfig(num_classes=6, num_textures=len(TEXTURES))
    rgb, mask, label = _sample()
    with pytest.raises(ValueError, match="none is novel"):
        apply_shift(_spec("novel_texture", 0.5), rgb, 1, ShiftContext(mask, label, full))


def test_background_shift_needs_mask_world_and_a_fraction() -> None:
    rgb, mask, label = _sample()
    with pytest.raises(ValueError, match="mask"):
        apply_shift(_spec("novel_texture", 0.5), rgb, 1, ShiftContext(None, label, WORLD))
    with pytest.raises(ValueError, match="world"):
        apply_shift(_spec("counter_biased", 0.5), rgb, 1, ShiftContext(mask, label, None))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        apply_shift(_spec("novel_texture", 1.5), rgb, 1, ShiftContext(mask, label, WORLD))


def test_background_cells_are_the_grid() -> None:
    rgb, _, label = _sample()
    no_object = np.zeros(rgb.shape[:2], dtype=np.uint8)
    out = apply_shift(
        _spec("novel_texture", 1 / GRID_CELLS**2), rgb, 5, ShiftContext(no_object, label, WORLD)
    )
    changed = (out != rgb).any(-1)
    ys, xs = np.nonzero(changed)
    cell = rgb.shape[0] // GRID_CELLS
    assert ys.max() - ys.min() < cell and xs.max() - xs.min() < cell  # one 8x8 cell at most


@pytest.mark.parametrize("name", IMAGENET_C_SHIFTS)
def test_imagenet_c_equals_the_package_for_the_same_seed(name: str) -> None:
    from imagecorruptions import corrupt

    rgb, mask, label = _sample(2)
    seed = 2**40 + 17
    for severity in (1, 5):
        ours = apply_shift(_spec(name, severity), rgb, seed, ShiftContext(mask, label, WORLD))
        kwargs = {"seed": seed % 2**32} if name in SEEDED_BY_ARGUMENT else {}
        state = np.random.get_state()
        np.random.seed(seed % 2**32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = corrupt(rgb, severity=severity, corruption_name=name, **kwargs)
        np.random.set_state(state)
        assert ours.shape == rgb.shape and ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, expected)
    zero = apply_shift(_spec(name, 0), rgb, seed, ShiftContext(mask, label, WORLD))
    np.testing.assert_array_equal(zero, rgb)


def test_imagenet_c_leaves_the_callers_numpy_state_alone() -> None:
    rgb, mask, label = _sample()
    np.random.seed(11)
    expected = np.random.random(3)
    np.random.seed(11)
    apply_shift(_spec("gaussian_noise", 3), rgb, 99, ShiftContext(mask, label, WORLD))
    np.testing.assert_array_equal(np.random.random(3), expected)


def test_imagenet_c_rejects_fractional_severity() -> None:
    rgb, mask, label = _sample()
    with pytest.raises(ValueError, match="integer"):
        apply_shift(_spec("fog", 1.5), rgb, 1, ShiftContext(mask, label, WORLD))


def test_shift_images_seeds_per_image_not_per_batch() -> None:
    imgs, masks, labels = zip(*(_sample(i) for i in range(4)), strict=True)
    stack = np.stack(imgs)
    ids = [f"img{i}" for i in range(4)]
    spec = build_shift_specs([{"shift": "novel_texture", "severities": ["half"], "values": [0.5]}])[
        0
    ]
    full = shift_images(spec, stack, labels, list(masks), ids, base_seed=3, world=WORLD)
    alone = shift_images(
        spec, stack[2:3], labels[2:3], [masks[2]], ids[2:3], base_seed=3, world=WORLD
    )
    np.testing.assert_array_equal(full[2], alone[0])
    assert shift_seed("a", spec, 0) != shift_seed("a", spec, 1)
    assert shift_seed("a", spec, 0) == shift_seed("a", spec, 0)


def test_build_shift_specs_reads_severities_and_values() -> None:
    specs = build_shift_specs(
        [
            {"shift": "counter_biased", "severities": ["low", "high"], "values": [0.5, 1.0]},
            {"shift": "jpeg_compression", "severities": [2, 4]},
        ]
    )
    assert [(s.family, s.shift, s.severity, s.value) for s in specs] == [
        ("background", "counter_biased", "low", 0.5),
        ("background", "counter_biased", "high", 1.0),
        ("imagenet_c", "jpeg_compression", "2", 2.0),
        ("imagenet_c", "jpeg_compression", "4", 4.0),
    ]
    assert build_shift_specs(None) == []
    with pytest.raises(ValueError, match="allowed"):
        build_shift_specs([{"shift": "fog", "severities": [1], "colour": 3}])
    with pytest.raises(UnknownNameError, match=r"ood.shifts\[0\]"):
        build_shift_specs([{"shift": "rain", "severities": [1]}])
    with pytest.raises(ValueError, match="twice"):
        build_shift_specs([{"shift": "fog", "severities": [1, 1]}])
    with pytest.raises(ValueError, match="values"):
        build_shift_specs([{"shift": "fog", "severities": [1, 2], "values": [1]}])


def test_load_world_reads_the_synthetic_manifest(tmp_path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"config": WORLD.to_dict()}))
    assert load_world(str(path)) == WORLD
    assert load_world(None) is None
    spec = _spec("counter_biased", 1.0)
    with pytest.raises(ValueError, match="synthetic world"):
        load_world(str(tmp_path / "missing.json"), [spec])
