"""The offline default dataset: shapes on textured backgrounds, with exact object masks.

Class = shape family; colour, scale, rotation and position vary per image. The background is one of
a bank of high-frequency textures (stripes, checkerboards, dots, noise, gradients with fine
ripples). In the ``train`` split only, a *spurious correlation* ties each class to "its" texture
with probability ``spurious_correlation``, so a model can learn a background shortcut; the other
splits are unbiased. Blur, noise and contrast corruptions wipe out these fine textures long before
they hide a large solid shape, which is what makes the robustness question testable offline.

Every image is generated from ``SeedSequence((seed, split, index))`` alone, so any single image
can be regenerated without the others. Shapes are rasterised without anti-aliasing: the object
mask *is* the set of pixels painted in the object colour.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.data.shapes import SHAPE_NAMES, SHAPES, TEXTURES, texture_field

logger = logging.getLogger(__name__)

#: Bump when the drawing code changes, so stale datasets on disk are regenerated.
GENERATOR_VERSION = 1
SPLITS = ("pretrain", "train", "val", "test")
MANIFEST_COLUMNS = ("rel_path", "mask_rel_path", "label", "label_name", "split", "texture_id")
_MAX_COLOUR_TRIES = 32


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class SyntheticConfig(Settings):
    """Everything that determines the dataset; its :meth:`fingerprint` names a generated copy."""

    PATH = "ingestion.source.synthetic"

    num_classes: int = 6
    image_size: int = 64
    images_per_class: dict[str, int] = field(
        default_factory=lambda: {"pretrain": 60, "train": 60, "val": 20, "test": 30}
    )
    spurious_correlation: float = 0.9
    num_textures: int = 8
    seed: int = 0
    scale_range: tuple[float, float] = (0.22, 0.36)  # object circumradius / image side
    rotation_range: tuple[float, float] = (0.0, 360.0)  # degrees
    position_jitter: float = 0.12  # max centre offset / image side (kept inside the frame)
    min_colour_distance: float = 90.0  # object vs texture colours, Euclidean on 0..255 RGB
    min_texture_contrast: float = 60.0  # between the two texture colours, so the pattern shows
    noise: float = 0.0  # std of additive Gaussian pixel noise (0..255 scale); 0 = none

    def __post_init__(self) -> None:
        self.images_per_class = {str(k): int(v) for k, v in dict(self.images_per_class).items()}
        self.scale_range = (float(self.scale_range[0]), float(self.scale_range[1]))
        self.rotation_range = (float(self.rotation_range[0]), float(self.rotation_range[1]))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with a clear message for any impossible setting."""
        if not 2 <= self.num_classes <= len(SHAPES):
            raise ValueError(
                f"num_classes must be in 2..{len(SHAPES)} (shape families: {', '.join(SHAPES)}),"
                f" got {self.num_classes}"
            )
        if not self.num_classes <= self.num_textures <= len(TEXTURES):
            raise ValueError(
                f"num_textures must be in num_classes..{len(TEXTURES)}"
                f" ({self.num_classes}..{len(TEXTURES)}), got {self.num_textures}"
            )
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        unknown = set(self.images_per_class) - set(SPLITS)
        if unknown:
            raise ValueError(f"images_per_class has unknown splits {sorted(unknown)}; use {SPLITS}")
        if any(v < 0 for v in self.images_per_class.values()):
            raise ValueError(f"images_per_class must be >= 0, got {self.images_per_class}")
        if not 0.0 <= self.spurious_correlation <= 1.0:
            raise ValueError(
                f"spurious_correlation must be in [0, 1], got {self.spurious_correlation}"
            )
        lo, hi = self.scale_range
        if not 0.0 < lo <= hi <= 0.5:
            raise ValueError(
                f"scale_range must satisfy 0 < lo <= hi <= 0.5, got {self.scale_range}"
            )
        if self.rotation_range[0] > self.rotation_range[1]:
            raise ValueError(
                f"rotation_range must be (lo, hi) with lo <= hi, got {self.rotation_range}"
            )
        if not 0.0 <= self.position_jitter <= 0.5:
            raise ValueError(f"position_jitter must be in [0, 0.5], got {self.position_jitter}")
        if min(self.noise, self.min_colour_distance, self.min_texture_contrast) < 0:
            raise ValueError("noise, min_colour_distance and min_texture_contrast must be >= 0")

    def to_dict(self) -> dict:
        """JSON-friendly dict (tuples become lists) that :meth:`from_params` accepts back."""
        d = asdict(self)
        d["scale_range"] = list(self.scale_range)
        d["rotation_range"] = list(self.rotation_range)
        return d

    def fingerprint(self) -> str:
        """Stable hash of the config and the generator version (16 hex)."""
        payload = json.dumps(
            {"config": self.to_dict(), "generator_version": GENERATOR_VERSION}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def class_names(self) -> tuple[str, ...]:
        return SHAPE_NAMES[: self.num_classes]

    def count(self, split: str) -> int:
        """Number of images of a split (all classes)."""
        return self.images_per_class.get(split, 0) * self.num_classes


# --------------------------------------------------------------------------------------------
# One image
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleSpec:
    """Every random choice behind one image; rendering it is deterministic."""

    label: int
    texture_id: int
    texture: np.ndarray  # HxWx3 uint8 background
    object_colour: tuple[int, int, int]
    centre: tuple[float, float]  # (x, y) in pixels
    radius: float  # pixels
    rotation: float  # radians
    noise: np.ndarray | None  # HxWx3 float additive noise, or None


def _split_code(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return int.from_bytes(hashlib.sha256(split.encode()).digest()[:4], "big")


def sample_spec(config: SyntheticConfig, split: str, index: int) -> SampleSpec:
    """Draw the random choices of image ``index`` of ``split`` (label = index mod num_classes)."""
    code = _split_code(split)
    n = config.count(split)
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for split {split!r} with {n} images")
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, code, index]))
    label = index % config.num_classes
    if split == "train" and rng.random() < config.spurious_correlation:
        texture_id = spurious_texture(config, label)
    else:
        texture_id = int(rng.integers(config.num_textures))
    return draw_spec(config, rng, label, texture_id)


def spurious_texture(config: SyntheticConfig, label: int) -> int:
    """The texture the ``train`` split ties to class ``label`` (its background shortcut)."""
    return int(label) % config.num_textures


def texture_name(texture_id: int) -> str:
    """Readable name of a texture of the bank, e.g. ``stripes(angle=90, period=4)``."""
    family, params = TEXTURES[int(texture_id)]
    return f"{family}({', '.join(f'{k}={v:g}' for k, v in params.items())})"


def draw_spec(
    config: SyntheticConfig, rng: np.random.Generator, label: int, texture_id: int
) -> SampleSpec:
    """Draw colours, pose and texture phase of an image of class ``label`` on texture
    ``texture_id``: what :func:`sample_spec` does once it has chosen both, so new images
    (e.g. counterfactual backgrounds) come from the same renderer."""
    if not 0 <= label < config.num_classes:
        raise ValueError(f"label must be in 0..{config.num_classes - 1}, got {label}")
    if not 0 <= texture_id < config.num_textures:
        raise ValueError(f"texture_id must be in 0..{config.num_textures - 1}, got {texture_id}")
    size = config.image_size
    family, params = TEXTURES[texture_id]
    field_ = texture_field(family, params, size, rng)
    first = rng.integers(0, 256, size=(1, 3)).astype(np.float64)
    colours = np.stack([first[0], _far_colour(rng, first, config.min_texture_contrast)])
    texture = (colours[0] * (1.0 - field_[..., None]) + colours[1] * field_[..., None]).round()
    object_colour = tuple(int(x) for x in _far_colour(rng, colours, config.min_colour_distance))
    lo, hi = config.scale_range
    radius = float(rng.uniform(lo, hi)) * size
    rotation = math.radians(float(rng.uniform(*config.rotation_range)))
    room = max(0.0, size / 2.0 - radius)
    jitter = min(config.position_jitter * size, room)
    centre = (
        size / 2.0 + float(rng.uniform(-jitter, jitter)),
        size / 2.0 + float(rng.uniform(-jitter, jitter)),
    )
    noise = rng.normal(0.0, config.noise, size=(size, size, 3)) if config.noise > 0 else None
    return SampleSpec(
        label=int(label),
        texture_id=int(texture_id),
        texture=texture.astype(np.uint8),
        object_colour=object_colour,
        centre=centre,
        radius=radius,
        rotation=rotation,
        noise=noise,
    )


def _far_colour(rng: np.random.Generator, others: np.ndarray, min_distance: float) -> np.ndarray:
    """A random RGB colour at least ``min_distance`` from every row of ``others`` (best of
    :data:`_MAX_COLOUR_TRIES` draws when that is impossible), so object and pattern stay visible."""
    best, best_dist = None, -1.0
    for _ in range(_MAX_COLOUR_TRIES):
        c = rng.integers(0, 256, size=3).astype(np.float64)
        dist = float(np.min(np.linalg.norm(others - c, axis=1)))
        if dist >= min_distance:
            return c
        if dist > best_dist:
            best, best_dist = c, dist
    return best


def object_mask(spec: SampleSpec, size: int, shape: str) -> np.ndarray:
    """Rasterise the shape (pixel centres, no anti-aliasing) -> HxW bool."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xx - spec.centre[0], yy - spec.centre[1]
    cos, sin = math.cos(spec.rotation), math.sin(spec.rotation)
    u = (dx * cos + dy * sin) / spec.radius
    v = (-dx * sin + dy * cos) / spec.radius
    return SHAPES[shape](u, v)


def render(
    spec: SampleSpec, config: SyntheticConfig, background: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Composite the object colour through its mask onto the texture (or ``background``)."""
    size = config.image_size
    mask = object_mask(spec, size, config.class_names[spec.label])
    base = spec.texture if background is None else np.asarray(background, dtype=np.uint8)
    rgb = np.where(mask[..., None], np.asarray(spec.object_colour, dtype=np.uint8), base)
    if spec.noise is not None:
        rgb = np.clip(np.rint(rgb.astype(np.float64) + spec.noise), 0, 255)
    return rgb.astype(np.uint8), mask.astype(np.uint8)


def generate_image(
    config: SyntheticConfig, split: str, index: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """-> (rgb HxWx3 uint8, mask HxW uint8 0/1, label, texture_id), from (seed, split, index)."""
    spec = sample_spec(config, split, index)
    rgb, mask = render(spec, config)
    return rgb, mask, spec.label, spec.texture_id


# --------------------------------------------------------------------------------------------
# Writing the dataset
# --------------------------------------------------------------------------------------------
def write_synthetic_dataset(root: Path | str, config: SyntheticConfig) -> pd.DataFrame:
    """Write images, masks (0/255) and ``manifest.csv`` under ``root``; return the manifest.

    ``root`` belongs to the generator: its ``images/`` and ``masks/`` are replaced on
    regeneration. ``manifest.json`` (with the config fingerprint) is written last, so an
    interrupted run is regenerated next time; a matching one skips the work.
    """
    root = Path(root)
    fingerprint = config.fingerprint()
    marker = root / "manifest.json"
    csv_path = root / "manifest.csv"
    if marker.is_file() and csv_path.is_file():
        try:
            existing = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            existing = {}
        if existing.get("fingerprint") == fingerprint:
            logger.info("Synthetic dataset %s is up to date (fingerprint %s)", root, fingerprint)
            return _read_manifest(csv_path)
        logger.info("Synthetic dataset config changed; regenerating %s", root)

    root.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)  # from here on, an interruption means "regenerate"
    csv_path.unlink(missing_ok=True)
    staging = root / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    rows = _render_all(config, staging, root)
    for sub in ("images", "masks"):
        target = root / sub
        if target.exists():
            shutil.rmtree(target)
        if (staging / sub).exists():
            (staging / sub).rename(target)
        else:
            target.mkdir()
    shutil.rmtree(staging, ignore_errors=True)
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    manifest.to_csv(csv_path, index=False)
    marker.write_text(
        json.dumps(
            {"fingerprint": fingerprint, "config": config.to_dict(), "num_images": len(manifest)},
            indent=2,
            sort_keys=True,
        )
    )
    logger.info("Wrote %d synthetic images to %s", len(manifest), root)
    return _read_manifest(csv_path)


def _render_all(config: SyntheticConfig, staging: Path, root: Path) -> list[tuple]:
    """Render every image and mask of every split into `staging`; their manifest rows."""
    rows = []
    total = sum(config.count(s) for s in SPLITS)
    logger.info(
        "Generating %d synthetic images (%d classes) into %s", total, config.num_classes, root
    )
    with tqdm(total=total, desc="synthetic images", disable=None) as bar:
        for split in SPLITS:
            for index in range(config.count(split)):
                rgb, mask, label, texture_id = generate_image(config, split, index)
                name = config.class_names[label]
                rel = f"images/{name}/{split}_{index:05d}.png"
                mask_rel = f"masks/{name}/{split}_{index:05d}.png"
                _save_png(rgb, staging / rel)
                _save_png(mask * np.uint8(255), staging / mask_rel)
                rows.append((rel, mask_rel, label, name, split, texture_id))
                bar.update(1)
    return rows


def _save_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG")


def _read_manifest(path: Path) -> pd.DataFrame:
    return pd.read_csv(
        path,
        dtype={
            "rel_path": str,
            "mask_rel_path": str,
            "label": np.int64,
            "label_name": str,
            "split": str,
            "texture_id": np.int64,
        },
        keep_default_na=False,
    )
