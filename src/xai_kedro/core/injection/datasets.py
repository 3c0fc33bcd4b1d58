"""The three extra training sets of each refined adapter: targeted, control, baseline retrained.

Why a control: more training steps, more images or mere augmentation can help an adapter by
themselves. Every arm adds exactly as many images (so every arm trains the same number of steps
on the same schedule) and they differ only in what those images are: `targeted` (generated
from the diagnosis), `control` (training images drawn without the diagnosis but in the targeted
set's class mix, perturbed by ordinary augmentation) and `baseline_retrained` (exact copies of
randomly drawn training images: no new data). *targeted - control* is what the targeting itself
buys; *control - baseline_retrained* what extra (augmented, re-weighted) images buy at all.

Every image is one row of :data:`INJECTION_IMAGE_COLUMNS`: the pixels (stored size, uint8), a
content hash, its training split tag, and its provenance (which failure motivated it, which
training images gave its object and background pixels, the generator and its settings).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from xai_kedro.core.common.hashing import sha256_bytes
from xai_kedro.core.common.settings import Settings
from xai_kedro.core.data.augment import AugmentConfig, augment_batch
from xai_kedro.core.injection.generator_api import GeneratedImages, ImagePool, details_json

ARMS = ("targeted", "control", "baseline_retrained")
CONTROL_GENERATOR = "untargeted_augmentation"
#: The baseline_retrained arm's "generator": training images copied as they are.
COPY_GENERATOR = "training_copies"
#: Generated ids carry this prefix: Bronze ids are bare hex, so the two can never collide.
ID_PREFIX = "ki-"
INJECTION_IMAGE_COLUMNS = [
    "image_id", "adapter_id", "arm", "label", "label_name", "split", "height", "width",
    "pixels", "mask", "content_hash", "generator", "generator_params", "motivated_by",
    "source_image_id", "background_image_id", "details",
]  # fmt: skip
FAILURE_PRIORITY = {"misclassified": 0, "low_faithfulness": 1}


@dataclass(frozen=True)
class ControlSettings(Settings):
    """Settings of the untargeted control (parameters `knowledge_injection.control`).

    augmentation: the perturbation applied to each drawn training image (AugmentConfig keys).
    match_class_counts: draw per class as many images as the targeted set has (the default:
        targeted - control then isolates the choice of images from "more images of the failing
        classes", a class re-weighting); false = uniform draws over the training split.
    """

    PATH = "knowledge_injection.control"

    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    match_class_counts: bool = True

    def __post_init__(self) -> None:
        augmentation = AugmentConfig.from_params(self.augmentation, f"{self.PATH}.augmentation")
        object.__setattr__(self, "augmentation", augmentation)
        object.__setattr__(self, "match_class_counts", bool(self.match_class_counts))


def select_failures(failures: pd.DataFrame, max_per_adapter: int) -> pd.DataFrame:
    """At most `max_per_adapter` failures per adapter: mistakes before low-faithfulness
    samples, the most confident first (they are the strongest evidence of a shortcut)."""
    if int(max_per_adapter) < 1:
        raise ValueError(
            "knowledge_injection.generator.max_failures_per_adapter must be >= 1, "
            f"got {max_per_adapter}"
        )
    ranked = failures.assign(_priority=failures["kind"].map(FAILURE_PRIORITY))
    ranked = ranked.sort_values(
        ["adapter_id", "_priority", "confidence", "image_id"],
        ascending=[True, True, False, True],
    )
    kept = ranked.groupby("adapter_id", sort=True).head(int(max_per_adapter))
    return kept.drop(columns="_priority").reset_index(drop=True)


def _image_id(adapter_id: str, arm: str, index: int, content_hash: str) -> str:
    digest = hashlib.sha1(f"{adapter_id}|{arm}|{index}|{content_hash}".encode()).hexdigest()
    return ID_PREFIX + digest[:16]


def image_rows(
    adapter_id: str,
    arm: str,
    generator: str,
    generator_params: Mapping[str, Any],
    generated: GeneratedImages,
    class_names: Sequence[str],
) -> pd.DataFrame:
    """Rows of :data:`INJECTION_IMAGE_COLUMNS` for one adapter's images of one arm."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    images = np.asarray(generated.images, dtype=np.uint8)
    records = []
    params_json = json.dumps(dict(generator_params), sort_keys=True, default=str)
    for i, (image, label, prov) in enumerate(
        zip(images, generated.labels, generated.provenance.to_dict("records"), strict=True)
    ):
        mask = generated.masks[i] if generated.masks is not None else None
        pixels = np.ascontiguousarray(image).tobytes()
        mask_bytes = None if mask is None else np.ascontiguousarray(mask, np.uint8).tobytes()
        digest = sha256_bytes(pixels + (mask_bytes or b""))
        records.append(
            {
                "image_id": _image_id(adapter_id, arm, i, digest),
                "adapter_id": adapter_id,
                "arm": arm,
                "label": int(label),
                "label_name": class_names[int(label)],
                "split": "train",
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "pixels": pixels,
                "mask": mask_bytes,
                "content_hash": digest,
                "generator": generator,
                "generator_params": params_json,
                "motivated_by": prov["motivated_by"],
                "source_image_id": prov["source_image_id"],
                "background_image_id": prov["background_image_id"],
                "details": details_json(prov["details"]),
            }
        )
    return pd.DataFrame(records, columns=INJECTION_IMAGE_COLUMNS)


def _control_draws(
    count: int,
    pool: ImagePool,
    settings: ControlSettings,
    rng: np.random.Generator,
    class_counts: Mapping[int, int] | None,
) -> np.ndarray:
    """Pool positions of the control's images: uniform with replacement, or per class."""
    if not settings.match_class_counts:
        return rng.integers(0, len(pool.image_ids), size=count)
    if class_counts is None or sum(class_counts.values()) != count:
        raise ValueError("match_class_counts needs class counts that add up to the size")
    rows = []
    for label in sorted(class_counts):
        candidates = np.flatnonzero(pool.labels == int(label))
        if len(candidates) == 0 and class_counts[label]:
            raise ValueError(f"no training image of class {label} for the control")
        rows.extend(rng.choice(candidates, size=int(class_counts[label]), replace=True))
    return np.asarray(rows, dtype=np.int64)


def untargeted_control(
    count: int,
    pool: ImagePool,
    settings: ControlSettings,
    seed: int,
    class_counts: Mapping[int, int] | None = None,
) -> tuple[GeneratedImages, dict[str, Any]]:
    """Exactly `count` augmented copies of training images drawn without the diagnosis.

    Uniform draws with replacement over the pool, or per class `class_counts` draws when
    `settings.match_class_counts` (then the counts must add up to `count`). -> the images and
    the settings to record as their generator parameters.
    """
    if count < 0:
        raise ValueError(f"control size must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    drawn = _control_draws(count, pool, settings, rng, class_counts)
    size = pool.image_size
    params = {
        "augmentation": settings.augmentation.to_dict(),
        "match_class_counts": settings.match_class_counts,
        "seed": int(seed),
    }
    if count == 0:
        empty = pd.DataFrame(columns=["motivated_by", "source_image_id", "background_image_id"])
        return GeneratedImages(
            np.zeros((0, size, size, 3), np.uint8),
            np.zeros(0, np.int64),
            None,
            empty.assign(details=[]),
        ), params
    ids = [pool.image_ids[i] for i in drawn]
    unique = sorted(set(ids))
    pixels, _ = pool.fetch(unique)
    position = {image_id: n for n, image_id in enumerate(unique)}
    batch = torch.from_numpy(np.ascontiguousarray(pixels[[position[i] for i in ids]]))
    generator = torch.Generator().manual_seed(int(seed))
    augmented = augment_batch(
        batch.permute(0, 3, 1, 2).float(), settings.augmentation, size, generator
    )
    images = augmented.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    provenance = pd.DataFrame(
        {
            "motivated_by": [None] * count,
            "source_image_id": ids,
            "background_image_id": [None] * count,
            "details": [{"draw": n} for n in range(count)],
        }
    )
    return GeneratedImages(images, pool.labels[drawn].astype(np.int64), None, provenance), params


def training_copies(
    count: int, pool: ImagePool, seed: int
) -> tuple[GeneratedImages, dict[str, Any]]:
    """The baseline_retrained arm's images: `count` training images copied unchanged (uniform
    draws, the training split's own class mix): as many images, so as many steps, as the other
    arms, and no new data. The control's draw without augmentation or class matching."""
    identity = ControlSettings(augmentation=AugmentConfig(), match_class_counts=False)
    return untargeted_control(count, pool, identity, seed)


def check_injection_images(
    frame: pd.DataFrame, train_ids: set[str], diagnosed_ids: set[str]
) -> None:
    """Every arm equally large per adapter; every image a training image whose pixels come
    from the training split (or a renderer) and whose motivation is a diagnosed sample."""
    missing = sorted(set(INJECTION_IMAGE_COLUMNS) - set(frame.columns))
    if missing:
        raise ValueError(f"injection images lack columns {missing}")
    ids = frame["image_id"]
    if not ids.is_unique or not ids.str.startswith(ID_PREFIX).all():
        raise ValueError(
            f"generated image ids must be unique and start with {ID_PREFIX!r} (Bronze ids never do)"
        )
    if set(frame["split"]) - {"train"}:
        raise ValueError("generated images belong to the training split only")
    counts = frame.groupby(["adapter_id", "arm"]).size().unstack("arm").reindex(columns=list(ARMS))
    counts = counts.fillna(0).astype(int)
    unequal = counts[counts.ne(counts["targeted"], axis=0).any(axis=1)]
    if len(unequal):
        raise ValueError(f"the arms' image sets differ in size: {unequal.to_dict('index')}")
    for column in ("source_image_id", "background_image_id"):
        used = {i for i in frame[column] if i is not None and not pd.isna(i)}
        if used - train_ids:
            raise ValueError(
                f"{column} names images outside the training split: {sorted(used - train_ids)[:3]}"
            )
    motivated = {i for i in frame["motivated_by"] if i is not None and not pd.isna(i)}
    if motivated - diagnosed_ids:
        raise ValueError(
            f"images motivated by samples that were not diagnosed: {sorted(motivated - diagnosed_ids)[:3]}"
        )
