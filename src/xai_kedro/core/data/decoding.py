"""Decode, validate and normalise any image file to a fixed-size RGB uint8 array.

Every input of the Bronze layer goes through :func:`decode_image` (one call per row inside a
Pandas UDF), so a bad file must end in a short, machine-readable reason code instead of a crash or,
worse, a silently half-grey picture. Masks go through :func:`decode_mask` with the same geometry so
that pixel ``(y, x)`` of the mask labels pixel ``(y, x)`` of the stored image.

Conventions (documented choices):

* Transparency (``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a ``transparency`` entry) is
  composited over ``background`` -- white by default, as most viewers show transparent images.
* 16-bit greyscale (``I;16``, ``I;16B``, ``I;16L``...) is *scaled* 0..65535 -> 0..255
  (``round(v / 257)``), never clipped. 32-bit integer ``I`` is read the same way (values clipped to
  0..65535 first), because PIL and TIFF use ``I`` for 16-bit data.
* 32-bit float ``F`` is read as intensity in [0, 1] -> 0..255 (clipped, NaN -> 0).
* ``max_pixels`` is the size limit that rejects (``decompression_bomb``), checked from the header
  before decoding; PIL's own hard limit (2x ``Image.MAX_IMAGE_PIXELS``) is mapped to the same code,
  and its ``DecompressionBombWarning`` is left as a warning (global PIL state is never changed).
* ``LAB`` goes through an sRGB colour transform (LittleCMS); other modes through ``convert("RGB")``.
* ``original_width``/``original_height`` are the displayed size, i.e. after EXIF orientation.
* Geometry: the shorter side is scaled to ``size`` and the centre ``size x size`` square is kept.
  This is done in one step (a centred square crop box in source coordinates resized to
  ``size x size``), which is the same mapping without double rounding; images use Lanczos
  (antialiased), masks nearest-neighbour.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from xai_kedro.core.common.settings import Settings, as_mapping

DEFAULT_MIN_SIDE = 32
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_BACKGROUND: tuple[int, int, int] = (255, 255, 255)

#: Oxford-IIIT Pet trimaps: 1 = pet, 2 = background, 3 = border; the border belongs to the pet.
OXFORD_TRIMAP_FOREGROUND: tuple[int, ...] = (1, 3)
#: Binary masks stored as 0/1 or 0/255 (the synthetic source writes 0/255).
BINARY_MASK_FOREGROUND: tuple[int, ...] = (1, 255)

REASONS = (
    "empty",
    "not_an_image",
    "truncated",
    "too_small",
    "decompression_bomb",
    "unreadable",
    "mask_mismatch",
)

_EXIF_ORIENTATION_TAG = 0x0112
# The same table as PIL.ImageOps.exif_transpose, so masks can follow their image.
_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MAX = 65535
_EIGHT_BIT_MAX = 255


class ImageRejected(ValueError):
    """A file that cannot become a Bronze row; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}; expected one of {REASONS}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    """A decoded, normalised image and what it was before normalisation."""

    pixels: np.ndarray  # (size, size, 3) uint8
    original_width: int  # after EXIF orientation
    original_height: int
    mode: str  # the source PIL mode, e.g. "RGB", "P", "I;16"
    exif_orientation: int = 1  # 1..8; pass to decode_mask so the mask follows the image


@dataclass(frozen=True)
class DecodeSettings(Settings):
    """What turns a file into stored pixels; every field changes the Bronze rows (so it keys the
    reuse of a previous Bronze table). Its keys sit directly in the `ingestion` block, beside
    others, so `from_params` reads them from there instead of rejecting the block's other keys."""

    PATH = "ingestion"

    storage_size: int
    min_side: int = DEFAULT_MIN_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS
    mask_foreground_values: tuple[int, ...] = BINARY_MASK_FOREGROUND

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any] | DecodeSettings | None = None, path: str = ""
    ) -> DecodeSettings:
        """Validate ``ingestion.storage_size/min_side/max_pixels/mask_foreground_values`` on the
        driver; a bad value is an error naming the setting."""
        if isinstance(params, cls):
            return params
        prefix = path or cls.PATH
        params = as_mapping(params, prefix)
        values = {
            name: _positive_int(params, name, prefix, default)
            for name, default in (
                ("storage_size", None),
                ("min_side", DEFAULT_MIN_SIDE),
                ("max_pixels", DEFAULT_MAX_PIXELS),
            )
        }
        if values["min_side"] > values["max_pixels"]:
            raise ValueError(
                f"{prefix}.min_side={values['min_side']} cannot exceed "
                f"{prefix}.max_pixels={values['max_pixels']}"
            )
        raw = params.get("mask_foreground_values", BINARY_MASK_FOREGROUND)
        if isinstance(raw, str | bytes) or not hasattr(raw, "__iter__"):
            raise ValueError(f"{prefix}.mask_foreground_values must be a list of ints, got {raw!r}")
        foreground = tuple(raw)
        if not foreground or not all(_is_int(v) and v >= 0 for v in foreground):
            raise ValueError(
                f"{prefix}.mask_foreground_values must be a non-empty list of ints >= 0, "
                f"got {raw!r}"
            )
        return cls(mask_foreground_values=tuple(int(v) for v in foreground), **values)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready) for fingerprints and logs."""
        return {
            "storage_size": self.storage_size,
            "min_side": self.min_side,
            "max_pixels": self.max_pixels,
            "mask_foreground_values": list(self.mask_foreground_values),
        }


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _positive_int(params: Mapping[str, Any], name: str, prefix: str, default: int | None) -> int:
    value = params.get(name, default)
    if value is None:
        raise ValueError(f"{prefix}.{name} must be set")
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{prefix}.{name} must be a positive integer, got {value!r}")
    return int(value)


def content_hash(data: bytes) -> str:
    """sha256 hex digest of the raw file bytes (detects duplicates and changed inputs)."""
    return hashlib.sha256(data).hexdigest()


def pixels_to_bytes(arr: np.ndarray) -> bytes:
    """uint8 array (HxWx3 image or HxW mask) -> row-major bytes for a Parquet binary column."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC array, got shape {arr.shape}")
    return np.ascontiguousarray(arr).tobytes()


def bytes_to_pixels(b: bytes, height: int, width: int, channels: int = 3) -> np.ndarray:
    """Inverse of :func:`pixels_to_bytes`: HxWxC uint8 (HxW when ``channels == 1``), writable."""
    if height <= 0 or width <= 0 or channels <= 0:
        raise ValueError(
            f"height, width and channels must be positive, got {height, width, channels}"
        )
    expected = height * width * channels
    if len(b) != expected:
        raise ValueError(
            f"pixel buffer has {len(b)} bytes, expected {height}x{width}x{channels} = {expected}"
        )
    arr = np.frombuffer(b, dtype=np.uint8).copy()
    return arr.reshape(height, width) if channels == 1 else arr.reshape(height, width, channels)


def decode_image(
    data: bytes,
    size: int,
    min_side: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
) -> DecodedImage:
    """Bytes of any image file -> ``size x size`` RGB uint8, or :class:`ImageRejected`.

    The whole file is decoded (truncated data is an error, never padded), EXIF orientation is
    applied, the mode is converted to RGB, then shorter-side resize + centre crop.
    """
    _check_size_arg(size)
    im = _open_fully(data, max_pixels)
    mode = im.mode
    orientation = _exif_orientation(im)
    try:
        if orientation in _ORIENTATION_TRANSPOSE:
            im = im.transpose(_ORIENTATION_TRANSPOSE[orientation])
        width, height = im.size
        if min(width, height) < min_side:
            raise ImageRejected(
                "too_small", f"{width}x{height} has a side below min_side={min_side}"
            )
        rgb = to_rgb(im, background)
        out = rgb.resize((size, size), Image.Resampling.LANCZOS, box=_centre_box(width, height))
        pixels = np.asarray(out, dtype=np.uint8).copy()
    except ImageRejected:
        raise
    except Exception as exc:  # any other PIL/numpy failure on a hostile file
        raise ImageRejected("unreadable", f"{type(exc).__name__}: {exc}") from exc
    return DecodedImage(pixels, width, height, mode, orientation)


def decode_mask(
    data: bytes,
    size: int,
    foreground_values: tuple[int, ...],
    orientation: int = 1,
    expected_size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Mask file -> ``size x size`` uint8 0/1 with exactly the geometry of :func:`decode_image`.

    ``foreground_values`` are the raw values (palette indices for ``P`` files, grey levels
    otherwise) that mean "object": :data:`OXFORD_TRIMAP_FOREGROUND` for Oxford trimaps,
    :data:`BINARY_MASK_FOREGROUND` for 0/1 or 0/255 masks. The mask's own EXIF is ignored; pass the
    image's ``DecodedImage.exif_orientation`` so the mask is turned like its image.
    ``expected_size`` (the image's displayed ``(width, height)``) rejects a mask that does not
    belong to the image with reason ``mask_mismatch``.
    """
    _check_size_arg(size)
    if not foreground_values:
        raise ValueError("foreground_values must name at least one mask value")
    if orientation not in range(1, 9):
        raise ValueError(f"orientation must be an EXIF orientation 1..8, got {orientation}")
    im = _open_fully(data, max_pixels)
    try:
        if orientation in _ORIENTATION_TRANSPOSE:
            im = im.transpose(_ORIENTATION_TRANSPOSE[orientation])
        width, height = im.size
        if expected_size is not None and (width, height) != tuple(expected_size):
            raise ImageRejected(
                "mask_mismatch",
                f"mask is {width}x{height}, image is {expected_size[0]}x{expected_size[1]}",
            )
        values = _mask_values(im)
        binary = np.isin(values, np.asarray(foreground_values)).astype(np.uint8)
        small = Image.fromarray(binary, mode="L").resize(
            (size, size), Image.Resampling.NEAREST, box=_centre_box(width, height)
        )
        return np.asarray(small, dtype=np.uint8).copy()
    except ImageRejected:
        raise
    except Exception as exc:
        raise ImageRejected("unreadable", f"{type(exc).__name__}: {exc}") from exc


def to_rgb(im: Image.Image, background: tuple[int, int, int] = DEFAULT_BACKGROUND) -> Image.Image:
    """Any PIL mode -> ``RGB`` following the conventions in the module docstring."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I;16") or mode == "I":
        return Image.fromarray(_sixteen_bit_to_uint8(np.asarray(im)), mode="L").convert("RGB")
    if mode == "F":
        return Image.fromarray(_float_to_uint8(np.asarray(im)), mode="L").convert("RGB")
    if mode == "LAB":
        return _lab_to_rgb(im)
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return im.convert("RGB")


def _check_size_arg(size: int) -> None:
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")


def _open_fully(data: bytes, max_pixels: int) -> Image.Image:
    """Open, verify and fully decode, mapping every failure to a reason code."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # We must not flip global PIL state back, and decoding with it on pads broken files.
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; truncated files would "
            "load silently. Leave it False (its default) for ingestion."
        )
    if data is None or len(data) == 0:
        raise ImageRejected("empty", "the file has 0 bytes")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            _check_pixels(probe.size, max_pixels)
            probe.verify()  # structure + PNG chunk CRCs; cheap
        im = Image.open(io.BytesIO(data))
        im.load()  # full decode: the only real proof that every pixel is present
        return im
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not_an_image", "PIL cannot identify the file format") from exc
    except (OSError, EOFError, SyntaxError, ValueError) as exc:
        text = str(exc)
        if isinstance(exc, EOFError) or "truncated" in text.lower():
            raise ImageRejected("truncated", text or "data ends early") from exc
        raise ImageRejected("unreadable", f"{type(exc).__name__}: {text}") from exc
    except Exception as exc:
        raise ImageRejected("unreadable", f"{type(exc).__name__}: {exc}") from exc


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected(
            "decompression_bomb",
            f"{width}x{height} = {width * height} pixels > max_pixels={max_pixels}",
        )


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF must not reject an otherwise good image
        return 1
    return value if value in range(1, 9) else 1


def _centre_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The centred square of side min(width, height), in source pixel coordinates."""
    side = min(width, height)
    left = (width - side) / 2.0
    top = (height - side) / 2.0
    return (left, top, left + side, top + side)


def _sixteen_bit_to_uint8(arr: np.ndarray) -> np.ndarray:
    wide = np.clip(arr.astype(np.int64), 0, _SIXTEEN_BIT_MAX)
    return ((wide * _EIGHT_BIT_MAX + _SIXTEEN_BIT_MAX // 2) // _SIXTEEN_BIT_MAX).astype(np.uint8)


def _float_to_uint8(arr: np.ndarray) -> np.ndarray:
    clean = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(clean, 0.0, 1.0) * _EIGHT_BIT_MAX).astype(np.uint8)


def _lab_to_rgb(im: Image.Image) -> Image.Image:
    transform = ImageCms.buildTransform(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )
    return ImageCms.applyTransform(im, transform)


def _mask_values(im: Image.Image) -> np.ndarray:
    """Raw mask values: palette indices for P, grey levels otherwise (1-bit -> 0/255)."""
    if im.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
        return np.asarray(im)
    if im.mode == "1":
        return np.asarray(im.convert("L"))
    if im.mode in ("LA", "PA"):
        return np.asarray(im.getchannel(0))
    return np.asarray(im.convert("L"))
