"""Hostile files, every PIL mode, EXIF orientation and geometry of core.images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from xai_kedro.core.data.decoding import (
    BINARY_MASK_FOREGROUND,
    OXFORD_TRIMAP_FOREGROUND,
    ImageRejected,
    bytes_to_pixels,
    content_hash,
    decode_image,
    decode_mask,
    pixels_to_bytes,
    to_rgb,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noisy_rgb(w: int = 96, h: int = 80, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def huge_png_header(side: int) -> bytes:
    """A tiny file that claims side x side pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


def reason_of(data: bytes, **kw) -> str:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, 32, **kw)
    return info.value.reason


# ------------------------------------------------------------------ hostile files
def test_empty_file():
    assert reason_of(b"") == "empty"


def test_random_bytes():
    data = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert reason_of(data) == "not_an_image"


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "cat.jpg"
    path.write_text("this is not a JPEG, just text pretending to be one\n" * 10)
    assert reason_of(path.read_bytes()) == "not_an_image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.95])
def test_truncated_files_are_rejected(fmt, keep):
    data = encode(noisy_rgb(), fmt)
    assert reason_of(data[: int(len(data) * keep)]) == "truncated"


def test_jpeg_cut_inside_header_is_truncated():
    data = encode(noisy_rgb(), "JPEG")
    assert reason_of(data[:100]) == "truncated"


def test_truncated_rejection_does_not_touch_pil_global():
    data = encode(noisy_rgb(), "JPEG")
    reason_of(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_refuses_to_run_when_truncated_loading_is_enabled(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(encode(noisy_rgb(), "PNG"), 32)


def test_too_small():
    data = encode(Image.new("RGB", (4, 4), RED))
    with pytest.raises(ImageRejected) as info:
        decode_image(data, 32)
    assert info.value.reason == "too_small"
    assert "4x4" in str(info.value)


def test_too_small_checks_either_side():
    data = encode(Image.new("RGB", (200, 20), RED))
    assert reason_of(data, min_side=32) == "too_small"
    assert decode_image(data, 16, min_side=16).pixels.shape == (16, 16, 3)


def test_pixel_budget_is_a_decompression_bomb():
    data = encode(Image.new("RGB", (64, 64), RED))
    assert reason_of(data, max_pixels=64 * 64 - 1) == "decompression_bomb"
    assert decode_image(data, 32, max_pixels=64 * 64).pixels.shape == (32, 32, 3)


def test_pil_decompression_bomb_error_is_mapped():
    # Our own budget lets it through; PIL's hard limit (2x MAX_IMAGE_PIXELS) must still stop it.
    assert reason_of(huge_png_header(100_000), max_pixels=10**12) == "decompression_bomb"


def test_corrupt_png_data_is_unreadable_or_truncated_never_accepted():
    data = bytearray(encode(noisy_rgb(), "PNG"))
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(16)  # breaks the CRC and the zlib stream
    assert reason_of(bytes(data)) in {"unreadable", "truncated"}


def test_rejection_is_a_value_error_with_a_message():
    with pytest.raises(ValueError, match="empty"):
        decode_image(b"", 32)
    with pytest.raises(ValueError, match="unknown rejection reason"):
        ImageRejected("nope", "x")


@pytest.mark.parametrize("size", [0, -3, 2.5])
def test_bad_size_argument(size):
    with pytest.raises(ValueError, match="size"):
        decode_image(encode(noisy_rgb()), size)


# ------------------------------------------------------------------ modes
def uniform(data: bytes, **kw) -> tuple[np.ndarray, str]:
    out = decode_image(data, 32, **kw)
    px = out.pixels.reshape(-1, 3)
    assert (px == px[0]).all(), "a uniform image must decode to a uniform image"
    return px[0].astype(int), out.mode


def palette_image(transparent_index: int | None = None) -> Image.Image:
    im = Image.new("P", (48, 40), 0)
    im.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    im.paste(1, (24, 0, 48, 40))  # right half = palette entry 1
    if transparent_index is not None:
        im.info["transparency"] = transparent_index
    return im


@pytest.mark.parametrize(
    ("mode", "value", "fmt", "expected", "tol"),
    [
        ("1", 1, "PNG", (255, 255, 255), 0),
        ("L", 100, "PNG", (100, 100, 100), 0),
        ("LA", (100, 255), "PNG", (100, 100, 100), 0),
        ("LA", (100, 0), "PNG", (255, 255, 255), 0),  # fully transparent -> white background
        ("RGB", (12, 34, 56), "PNG", (12, 34, 56), 0),
        ("CMYK", (255, 0, 0, 0), "JPEG", (0, 255, 255), 8),  # pure cyan
        ("CMYK", (0, 255, 0, 0), "TIFF", (255, 0, 255), 0),  # pure magenta
        ("I;16", 0x8080, "PNG", (128, 128, 128), 0),  # 32896 scaled, clipping would give 255
        ("I;16", 1000, "PNG", (4, 4, 4), 0),  # round(1000 / 257)
        ("I;16B", 0x4000, "TIFF", (64, 64, 64), 0),
        ("I", 40000, "TIFF", (156, 156, 156), 0),  # read as 16-bit
        ("F", 0.25, "TIFF", (64, 64, 64), 0),  # [0, 1] -> 0..255
        ("F", 7.5, "TIFF", (255, 255, 255), 0),  # clipped
        ("YCbCr", (76, 85, 255), "TIFF", (254, 0, 0), 2),
        ("LAB", (136, 208, 195), "TIFF", (250, 3, 11), 6),  # sRGB red-ish
        ("LAB", (255, 128, 128), "TIFF", (255, 255, 255), 2),  # L=100 -> white
    ],
)
def test_modes_convert_to_rgb(mode, value, fmt, expected, tol):
    data = encode(Image.new(mode, (48, 40), value), fmt)
    rgb, source_mode = uniform(data)
    assert source_mode == mode
    assert np.abs(rgb - np.array(expected)).max() <= tol, (mode, rgb, expected)


def test_sixteen_bit_ramp_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    out = decode_image(encode(Image.fromarray(ramp)), 64)
    assert out.mode == "I;16"
    row = out.pixels[10, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    expected = np.rint(ramp[10] / 257.0)
    assert np.abs(row - expected).max() <= 2  # Lanczos along a linear ramp is ~exact


def test_rgba_is_composited_on_the_background():
    data = encode(Image.new("RGBA", (48, 40), (200, 0, 0, 128)))
    on_white, _ = uniform(data)
    on_black, _ = uniform(data, background=(0, 0, 0))
    a = 128 / 255
    assert (
        np.abs(on_white - np.array([200 * a + 255 * (1 - a), 255 * (1 - a), 255 * (1 - a)])).max()
        <= 1
    )
    assert np.abs(on_black - np.array([200 * a, 0, 0])).max() <= 1


def test_palette_without_and_with_transparency():
    plain = decode_image(encode(palette_image()), 40).pixels
    assert tuple(plain[5, 2]) == (0, 0, 0) and tuple(plain[5, 37]) == (10, 200, 30)
    out = decode_image(encode(palette_image(transparent_index=0)), 40)
    assert out.mode == "P"
    assert tuple(out.pixels[5, 2]) == (255, 255, 255)  # transparent entry -> background
    assert tuple(out.pixels[5, 37]) == (10, 200, 30)


def test_rgb_with_transparent_colour_key():
    im = Image.new("RGB", (48, 40), (0, 0, 0))
    im.paste(GREEN, (24, 0, 48, 40))
    px = decode_image(encode(im, transparency=(0, 0, 0)), 40).pixels
    assert tuple(px[5, 2]) == (255, 255, 255) and tuple(px[5, 37]) == GREEN


def test_hsv_in_memory():
    assert to_rgb(Image.new("HSV", (4, 4), (85, 255, 255))).getpixel((0, 0)) == GREEN


# ------------------------------------------------------------------ EXIF orientation
def marked(w: int, h: int) -> Image.Image:
    """Blue image with a red block in the stored top-left corner."""
    im = Image.new("RGB", (w, h), BLUE)
    im.paste(RED, (0, 0, 16, 16))
    return im


def with_orientation(im: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(im, "JPEG", exif=exif, quality=95)


def is_red(px: np.ndarray) -> bool:
    return px[0] > 200 and px[1] < 60 and px[2] < 60


@pytest.mark.parametrize(
    ("orientation", "red_corner"),
    # (row, col) of the corner that shows the stored top-left red block once displayed.
    [(1, (2, 2)), (3, (61, 61)), (6, (2, 61)), (8, (61, 2))],
)
def test_exif_orientation_moves_the_marker(orientation, red_corner):
    out = decode_image(with_orientation(marked(64, 64), orientation), 64)
    assert out.exif_orientation == orientation
    corners = [(2, 2), (2, 61), (61, 2), (61, 61)]
    assert [rc for rc in corners if is_red(out.pixels[rc])] == [red_corner]


def test_exif_rotation_swaps_reported_size():
    out = decode_image(with_orientation(marked(80, 48), 6), 32)
    assert (out.original_width, out.original_height) == (48, 80)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_table_matches_pil(orientation):
    data = with_orientation(marked(80, 48), orientation)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    ours = decode_image(data, 48).pixels
    theirs = decode_image(encode(reference, "PNG"), 48).pixels
    np.testing.assert_array_equal(ours, theirs)


# ------------------------------------------------------------------ geometry
def banded(w: int, h: int, vertical: bool) -> Image.Image:
    """Three equal bands red/green/blue along the long side."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    n = w if vertical else h
    for i, colour in enumerate((RED, GREEN, BLUE)):
        sl = slice(i * n // 3, (i + 1) * n // 3)
        if vertical:
            arr[:, sl] = colour
        else:
            arr[sl, :] = colour
    return Image.fromarray(arr)


def test_centre_crop_of_a_wide_image_without_scaling():
    out = decode_image(encode(banded(120, 60, vertical=True)), 60)
    px = out.pixels
    assert (out.original_width, out.original_height) == (120, 60)
    # The crop keeps x in [30, 90): red 30..40, green 40..80, blue 80..90.
    assert (px[:, :10] == RED).all()
    assert (px[:, 10:50] == GREEN).all()
    assert (px[:, 50:] == BLUE).all()


def test_shorter_side_resize_then_crop_of_a_tall_image():
    px = decode_image(encode(banded(60, 120, vertical=False)), 30).pixels.astype(int)
    # Scaled by 1/2: 30 x 60, crop keeps rows 15..45: red rows 15..20, green 20..40, blue 40..45.
    assert px.shape == (30, 30, 3)
    assert (np.abs(px[1:3] - RED) <= 40).all()
    assert (np.abs(px[8:22] - GREEN) <= 3).all()
    assert (np.abs(px[-2:] - BLUE) <= 40).all()
    assert is_red(px[1, 15]) and not is_red(px[10, 15])


def test_upscaling_a_small_image():
    px = decode_image(encode(Image.new("RGB", (40, 50), GREEN)), 64, min_side=32).pixels
    assert px.shape == (64, 64, 3) and (px == GREEN).all()


# ------------------------------------------------------------------ masks
def marker_pair(w: int, h: int, box: tuple[int, int, int, int]) -> tuple[bytes, bytes]:
    """An image with a red box on black and its trimap (1 inside, 3 on the edge, 2 elsewhere)."""
    im = Image.new("RGB", (w, h), (0, 0, 0))
    im.paste(RED, box)
    trimap = np.full((h, w), 2, dtype=np.uint8)
    x0, y0, x1, y1 = box
    trimap[y0:y1, x0:x1] = 3
    trimap[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = 1
    return encode(im), encode(Image.fromarray(trimap, mode="L"))


def assert_mask_matches_red(pixels: np.ndarray, mask: np.ndarray) -> None:
    strong = pixels[..., 0] > 200
    weak = pixels[..., 0] > 40
    assert mask.sum() > 0
    assert np.all(mask[strong] == 1), "every clearly red pixel must be in the mask"
    assert np.all(weak[mask == 1]), "every mask pixel must be (at least partly) red"
    ys, xs = np.nonzero(mask)
    ry, rx = np.nonzero(strong)
    assert abs(ys.mean() - ry.mean()) <= 1.0 and abs(xs.mean() - rx.mean()) <= 1.0


def test_mask_has_the_image_geometry():
    img, mask = marker_pair(100, 70, (62, 20, 76, 34))
    decoded = decode_image(img, 35)
    m = decode_mask(mask, 35, OXFORD_TRIMAP_FOREGROUND, expected_size=(100, 70))
    assert m.shape == (35, 35) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    # x: (62 - 15) / 2 = 23.5 .. (76 - 15) / 2 = 30.5; y: 10 .. 17.
    assert m[13, 27] == 1 and m[13, 20] == 0 and m[5, 27] == 0
    assert_mask_matches_red(decoded.pixels, m)


def test_mask_follows_the_exif_orientation_of_its_image():
    im = Image.new("RGB", (96, 64), (0, 0, 0))
    im.paste(RED, (8, 8, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(encode(im, "JPEG", exif=exif, quality=95), 64)
    trimap = np.full((64, 96), 2, dtype=np.uint8)
    trimap[8:30, 8:30] = 1  # drawn on the stored (unrotated) pixels
    mask_png = encode(Image.fromarray(trimap, mode="L"))
    size = (decoded.original_width, decoded.original_height)
    m = decode_mask(mask_png, 64, (1,), orientation=decoded.exif_orientation, expected_size=size)
    assert_mask_matches_red(decoded.pixels, m)
    unrotated = decode_mask(mask_png, 64, (1,))
    assert not np.array_equal(unrotated, m)
    with pytest.raises(ImageRejected) as info:
        decode_mask(mask_png, 64, (1,), expected_size=size)  # forgot the orientation
    assert info.value.reason == "mask_mismatch"


def test_trimap_values_and_binary_masks():
    trimap = np.array([[1, 2, 3, 2]] * 4, dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    m = decode_mask(encode(Image.fromarray(trimap, mode="L")), 32, OXFORD_TRIMAP_FOREGROUND)
    np.testing.assert_array_equal(m[0, ::8], [1, 0, 1, 0])
    binary = (trimap == 1).astype(np.uint8) * 255
    for data in (
        encode(Image.fromarray(binary, mode="L")),
        encode(Image.fromarray(binary > 0)),  # mode "1"
        encode(Image.fromarray(binary // 255, mode="L")),  # 0/1
    ):
        np.testing.assert_array_equal(
            decode_mask(data, 32, BINARY_MASK_FOREGROUND)[0, ::8], [1, 0, 0, 0]
        )


def test_palette_mask_uses_indices():
    p = Image.fromarray(np.array([[0, 1], [2, 1]], dtype=np.uint8).repeat(20, 0).repeat(20, 1), "P")
    p.putpalette([255, 255, 255, 0, 0, 0, 9, 9, 9] + [0] * (256 * 3 - 9))
    m = decode_mask(encode(p), 40, (1,))
    np.testing.assert_array_equal(m[::20, ::20], [[0, 1], [0, 1]])


def test_bad_mask_files_and_arguments():
    with pytest.raises(ImageRejected) as info:
        decode_mask(b"", 32, (1,))
    assert info.value.reason == "empty"
    with pytest.raises(ValueError, match="foreground_values"):
        decode_mask(encode(Image.new("L", (32, 32))), 32, ())
    with pytest.raises(ValueError, match="orientation"):
        decode_mask(encode(Image.new("L", (32, 32))), 32, (1,), orientation=9)


# ------------------------------------------------------------------ bytes helpers
def test_pixels_bytes_roundtrip():
    arr = np.random.default_rng(3).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    b = pixels_to_bytes(arr)
    assert len(b) == 5 * 7 * 3
    back = bytes_to_pixels(b, 5, 7)
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] ^= 1  # writable, and a copy
    assert arr[0, 0, 0] != back[0, 0, 0]
    mask = (arr[..., 0] > 127).astype(np.uint8)
    np.testing.assert_array_equal(bytes_to_pixels(pixels_to_bytes(mask), 5, 7, channels=1), mask)
    # Non-contiguous views are stored in logical (row-major) order.
    np.testing.assert_array_equal(
        bytes_to_pixels(pixels_to_bytes(arr[:, ::-1]), 5, 7), arr[:, ::-1]
    )


def test_pixels_bytes_errors():
    with pytest.raises(ValueError, match="uint8"):
        pixels_to_bytes(np.zeros((2, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="expected 4x4x3"):
        bytes_to_pixels(b"\0" * 47, 4, 4)


def test_content_hash_is_sha256():
    assert content_hash(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# ------------------------------------------------------------------ settings
def test_decode_settings_from_params_name_the_bad_setting():
    from xai_kedro.core.data.decoding import DecodeSettings

    settings = DecodeSettings.from_params(
        {"storage_size": 48, "min_side": 32, "max_pixels": 1000, "mask_foreground_values": [1, 3]}
    )
    assert settings == DecodeSettings(48, 32, 1000, (1, 3))
    assert settings.as_dict()["mask_foreground_values"] == [1, 3]
    for bad, match in [
        ({"storage_size": 0}, r"ingestion\.storage_size must be a positive integer"),
        ({"storage_size": 48.0}, r"ingestion\.storage_size must be a positive integer"),
        ({}, r"ingestion\.storage_size must be set"),
        ({"storage_size": 48, "min_side": True}, r"ingestion\.min_side"),
        ({"storage_size": 48, "max_pixels": -1}, r"ingestion\.max_pixels"),
        ({"storage_size": 48, "min_side": 64, "max_pixels": 10}, r"cannot exceed"),
        ({"storage_size": 48, "mask_foreground_values": []}, r"mask_foreground_values"),
        ({"storage_size": 48, "mask_foreground_values": "255"}, r"mask_foreground_values"),
        ({"storage_size": 48, "mask_foreground_values": [1, -3]}, r"mask_foreground_values"),
    ]:
        with pytest.raises(ValueError, match=match):
            DecodeSettings.from_params(bad)
