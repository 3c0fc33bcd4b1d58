"""Numbers as the report and the summary tables print them (one place, so they agree)."""

from __future__ import annotations

import numpy as np


def fmt(value: object, spec: str = ".3f", missing: str = "n/a") -> str:
    """A number formatted with ``spec``; NaN/inf as ``missing``; anything else as its string."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return missing if not np.isfinite(v) else format(v, spec)


def interval_sign(low: object, high: object) -> int:
    """+1 when the interval lies above zero, -1 below, 0 when it includes zero (or is NaN)."""
    lo, hi = float(low), float(high)  # type: ignore[arg-type]
    if np.isfinite(lo) and lo > 0:
        return 1
    if np.isfinite(hi) and hi < 0:
        return -1
    return 0


# 80 % power at alpha 0.05 two-sided: z_(1 - alpha/2) + z_(power) = 1.96 + 0.84
DETECTABLE_Z = 2.8
CI_Z = 1.96  # the report's intervals are 95 %


def detectable_effect(low: object, high: object) -> float:
    """The smallest true effect a comparison detects with 80 % power at alpha 0.05 (two-sided):
    2.8 x its standard error, read from the width of its 95 % bootstrap interval (width /
    3.92, the normal approximation); NaN when the interval is missing."""
    try:
        lo, hi = float(low), float(high)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return float("nan")
    return DETECTABLE_Z * (hi - lo) / (2 * CI_Z)


def detectable_note(low: object, high: object, unit: str = "points") -> str:
    """' (detects effects over X points)' for a sentence, empty when it cannot be computed."""
    mde = detectable_effect(low, high)
    if not np.isfinite(mde):
        return ""
    return f"; smallest detectable effect {mde:.2f} {unit} (80 % power, alpha 0.05, 2.8 x SE)"
