"""The generator registry and the two built-in generators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from xai_kedro.core.data import synthetic as S
from xai_kedro.core.injection import generator_api as G
from xai_kedro.core.injection.generator_api import (
    GeneratedImages,
    GenerationRequest,
    ImagePool,
    generate,
    register_generator,
)
from xai_kedro.core.injection.generators import (
    composite_on_background,
    fill_object,
    render_counterfactual,
)

SIZE = 48
CONFIG = S.SyntheticConfig(
    num_classes=6, image_size=SIZE, images_per_class={"train": 8, "val": 100, "test": 4}
)
SOURCE = {"kind": "synthetic", "synthetic": CONFIG.to_dict()}


def synthetic_pool(with_masks: bool = True) -> ImagePool:
    ids, labels, images, masks = [], [], [], []
    for index in range(CONFIG.count("train")):
        rgb, mask, label, _ = S.generate_image(CONFIG, "train", index)
        ids.append(f"train{index:03d}")
        labels.append(label)
        images.append(rgb)
        masks.append(mask)
    return ImagePool.from_arrays(ids, labels, np.stack(images), masks if with_masks else None)


def failures(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"image_id": i, "label": label, "confuser": confuser, "kind": "misclassified"}
            for i, label, confuser in rows
        ]
    )


def request(frame: pd.DataFrame, pool: ImagePool | None = None, **kwargs) -> GenerationRequest:
    return GenerationRequest(
        frame,
        pool or synthetic_pool(),
        CONFIG.class_names,
        kwargs.pop("per_failure", 2),
        kwargs.pop("params", {}),
        kwargs.pop("source", SOURCE),
        kwargs.pop("seed", 0),
    )


# ------------------------------------------------------------------------------ registry
def test_unknown_generator_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown generator 'diffusion'.*background_swap"):
        generate("diffusion", request(failures([("v1", 0, 1)])))


def test_mask_generator_on_a_source_without_masks_is_a_clear_error():
    pool = synthetic_pool(with_masks=False)
    with pytest.raises(ValueError, match="'background_swap' needs object masks.*have none"):
        generate("background_swap", request(failures([("v1", 0, 1)]), pool))


def test_synthetic_counterfactual_needs_the_synthetic_source():
    with pytest.raises(ValueError, match="ingestion.source.kind: synthetic"):
        generate("synthetic_counterfactual", request(failures([("v1", 0, 1)]), source={}))


def test_a_user_generator_is_registered_and_its_output_checked():
    name = "test_copy_objects"

    @register_generator(name)
    def copy_first(req: GenerationRequest) -> GeneratedImages:
        first = req.pool.ids_of_class(int(req.failures["label"].iloc[0]))[0]
        images, _ = req.pool.fetch([first])
        return GeneratedImages(
            images,
            np.asarray([req.failures["label"].iloc[0]]),
            None,
            pd.DataFrame(
                {
                    "motivated_by": [req.failures["image_id"].iloc[0]],
                    "source_image_id": [first],
                    "background_image_id": [None],
                    "details": [{}],
                }
            ),
        )

    try:
        out = generate(name, request(failures([("v1", 2, 1)])))
        assert out.labels.tolist() == [2] and out.images.shape == (1, SIZE, SIZE, 3)
        with pytest.raises(ValueError, match="registered twice"):
            register_generator(name)(copy_first)
    finally:
        G.GENERATORS.unregister(name)


def test_a_generator_may_not_take_pixels_from_outside_the_pool():
    name = "test_leaky"

    @register_generator(name)
    def leaky(req: GenerationRequest) -> GeneratedImages:
        return GeneratedImages(
            np.zeros((1, SIZE, SIZE, 3), np.uint8),
            np.asarray([0]),
            None,
            pd.DataFrame(
                {
                    "motivated_by": ["v1"],
                    "source_image_id": ["some_test_image"],
                    "background_image_id": [None],
                    "details": [{}],
                }
            ),
        )

    try:
        with pytest.raises(ValueError, match="outside the training pool"):
            generate(name, request(failures([("v1", 0, 1)])))
    finally:
        G.GENERATORS.unregister(name)


# ------------------------------------------------------------------------------ synthetic
def _spectrum(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalised Fourier magnitude of the background (object filled with its mean colour)."""
    background = ~mask.astype(bool)
    pixels = image.astype(float)
    pixels[~background] = pixels[background].mean(axis=0)
    centred = pixels - pixels.mean(axis=(0, 1))
    magnitude = np.abs(np.fft.fft2(centred, axes=(0, 1))).sum(-1)
    return (magnitude / np.linalg.norm(magnitude)).ravel()


def test_synthetic_counterfactual_renders_the_requested_class_on_the_requested_texture():
    # texture references from the unbiased validation split of the same generator
    references: dict[int, list[np.ndarray]] = {}
    for index in range(CONFIG.count("val")):
        rgb, mask, _, texture_id = S.generate_image(CONFIG, "val", index)
        references.setdefault(texture_id, []).append(_spectrum(rgb, mask))
    centroids = {t: np.mean(v, axis=0) for t, v in references.items()}
    centroids = {t: c / np.linalg.norm(c) for t, c in centroids.items()}  # cosine similarity
    rng = np.random.default_rng(3)
    for label in range(CONFIG.num_classes):
        for texture_id in range(CONFIG.num_textures):
            renders = [render_counterfactual(CONFIG, label, texture_id, rng) for _ in range(4)]
            mean = np.mean([_spectrum(rgb, mask) for rgb, mask in renders], axis=0)
            assert max(centroids, key=lambda t: mean @ centroids[t]) == texture_id
            for rgb, mask in renders:
                object_pixels = rgb[mask.astype(bool)]
                assert len(np.unique(object_pixels, axis=0)) == 1  # one solid object colour


def test_synthetic_counterfactual_draws_the_shape_of_the_requested_class():
    for label, name in enumerate(CONFIG.class_names):
        spec = S.draw_spec(CONFIG, np.random.default_rng(label), label, 0)
        _, mask = render_counterfactual(CONFIG, label, 0, np.random.default_rng(label))
        assert np.array_equal(mask.astype(bool), S.object_mask(spec, SIZE, name))
        others = [n for n in CONFIG.class_names if n != name]
        assert all(
            not np.array_equal(mask.astype(bool), S.object_mask(spec, SIZE, o)) for o in others
        )


def test_synthetic_counterfactual_uses_the_confusers_texture_first_then_other_classes():
    out = generate(
        "synthetic_counterfactual",
        request(failures([("v1", 0, 3), ("v2", 2, 2)]), per_failure=3),
    )
    details = out.provenance["details"].tolist()
    assert out.labels.tolist() == [0, 0, 0, 2, 2, 2]
    assert [d["texture_id"] for d in details[:3]] == [3, 1, 2]  # confuser 3, then 1, 2
    assert 2 not in [d["texture_id"] for d in details[3:]]  # never the class's own texture
    assert set(out.provenance["motivated_by"]) == {"v1", "v2"}
    assert out.provenance["source_image_id"].isna().all()  # rendered, no pixels taken
    again = generate(
        "synthetic_counterfactual",
        request(failures([("v1", 0, 3), ("v2", 2, 2)]), per_failure=3),
    )
    np.testing.assert_array_equal(out.images, again.images)  # deterministic from the seed


# ------------------------------------------------------------------------------ background swap
def test_background_swap_keeps_every_object_pixel_and_changes_only_background_pixels():
    pool = synthetic_pool()
    out = generate(
        "background_swap",
        request(
            failures([("v1", 0, 1), ("v2", 4, 5)]), pool, per_failure=3, params={"blend_px": 2}
        ),
    )
    assert len(out.images) == 6
    labels = dict(zip(pool.image_ids, pool.labels, strict=True))
    for n, prov in enumerate(out.provenance.itertuples(index=False)):
        image, mask = out.images[n], out.masks[n]
        source, source_mask = pool.fetch([prov.source_image_id])
        back, back_mask = pool.fetch([prov.background_image_id])
        inside = source_mask[0].astype(bool)
        assert np.array_equal(mask.astype(bool), inside)
        assert np.array_equal(image[inside], source[0][inside])  # every object pixel kept
        changed = (image != source[0]).any(-1)
        assert not (changed & inside).any()  # only background pixels change
        assert changed.any()
        # beyond the blended ring the background is the other image's (object filled in)
        far = ndimage.distance_transform_edt(~inside) >= 2 + 1
        assert np.array_equal(image[far], fill_object(back[0], back_mask[0])[far])
        assert labels[prov.source_image_id] == out.labels[n]
        assert labels[prov.background_image_id] != out.labels[n]


def test_background_swap_takes_the_confusers_background_first():
    pool = synthetic_pool()
    out = generate("background_swap", request(failures([("v1", 0, 4)]), pool, per_failure=2))
    labels = dict(zip(pool.image_ids, pool.labels, strict=True))
    backgrounds = [labels[i] for i in out.provenance["background_image_id"]]
    assert backgrounds[0] == 4 and backgrounds[1] not in (0, 4)


def test_fill_object_leaves_no_object_pixel_of_the_background_image():
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = 10
    image[:, 4:] = 200
    mask = np.zeros((8, 8), np.uint8)
    mask[3:5, 1:3] = 1
    image[mask.astype(bool)] = 99  # the object
    filled = fill_object(image, mask)
    assert not (filled == 99).all(-1).any()
    assert np.array_equal(filled[~mask.astype(bool)], image[~mask.astype(bool)])
    with pytest.raises(ValueError, match="no background"):
        fill_object(image, np.ones((8, 8), np.uint8))


def test_composite_with_no_blending_is_a_hard_cut():
    image = np.full((6, 6, 3), 50, np.uint8)
    background = np.full((6, 6, 3), 150, np.uint8)
    mask = np.zeros((6, 6), np.uint8)
    mask[2:4, 2:4] = 1
    out = composite_on_background(image, mask, background, 0)
    assert (out[mask.astype(bool)] == 50).all() and (out[~mask.astype(bool)] == 150).all()
    blended = composite_on_background(image, mask, background, 2)
    ring = blended[1, 2]  # one pixel outside the mask: between the two
    assert 50 < ring[0] < 150
