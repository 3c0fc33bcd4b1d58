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
