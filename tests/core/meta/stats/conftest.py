"""A feature with a known, moderate association with a binary outcome (shared by the tests)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def known() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.6
    x = rng.normal(0, 1, 200) + 0.8 * y + rng.normal(0, 0.3, 200) * y  # unequal spreads
    return x, y
