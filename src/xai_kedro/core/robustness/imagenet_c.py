"""The `imagenet_c` shift family: the 15 corruptions of Hendrycks & Dietterich (2019) and their 4
validation ones, through the maintained `imagecorruptions` package (PyPI
`imagecorruptions-imaug`, Apache-2.0), not rewritten by hand.

The package draws from NumPy's global legacy RNG (and takes an explicit seed for
``impulse_noise`` and ``glass_blur``), so each call seeds that state from the image's seed and
restores the caller's state afterwards, like `core.common.rng` does for torch. Severity values
are the package's integer severities 1..5; 0 is the identity. docs/metrics.md says what each does
at 48 px.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import numpy as np

from xai_kedro.core.robustness.shifts import ShiftContext, ShiftFn, register_shift

IMAGENET_C_FAMILY = "imagenet_c"
# corrupt()'s order: the 15 benchmark corruptions, then the 4 validation ones.
IMAGENET_C_SHIFTS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip
SEEDED_BY_ARGUMENT = ("impulse_noise", "glass_blur")
MIN_SIDE = 32  # the package refuses smaller images


@contextlib.contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG inside the block and restore the caller's state after."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def corrupt_image(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """`imagecorruptions.corrupt` of one uint8 image at ``severity``, deterministic per seed."""
    from imagecorruptions import corrupt  # heavy import (scikit-image, OpenCV, numba): lazily

    if severity == 0:
        return image.copy()
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"{name}: severity must be 0..5, got {severity}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"{name}: imagecorruptions needs images of at least {MIN_SIDE} px")
    kwargs = {"seed": seed % 2**32} if name in SEEDED_BY_ARGUMENT else {}
    with numpy_global_seed(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package's own deprecation chatter
        out = corrupt(image, severity=severity, corruption_name=name, **kwargs)
    return np.asarray(out, dtype=np.uint8)


def _shift(name: str) -> ShiftFn:
    def fn(image: np.ndarray, value: float, seed: int, context: ShiftContext) -> np.ndarray:
        if float(value) != int(value):
            raise ValueError(f"{name}: severity value must be an integer 0..5, got {value}")
        return corrupt_image(image, name, int(value), seed)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"imagecorruptions ``{name}`` at integer severity ``value`` (0 = identity)."
    return fn


for _name in IMAGENET_C_SHIFTS:
    register_shift(IMAGENET_C_FAMILY, _name)(_shift(_name))
