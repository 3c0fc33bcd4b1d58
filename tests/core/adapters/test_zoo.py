"""Zoo expansion: members, grids, generated ids and errors."""

from __future__ import annotations

import pytest

from xai_kedro.core.adapters import (
    expand_zoo,
)


def test_expand_zoo_members_grid_and_2r():
    zoo = expand_zoo(
        {
            "defaults": {"alpha": "2r", "use_dora": True, "use_rslora": True, "seed": 0},
            "members": [{"rank": 0}, {"adapter_id": "custom", "rank": 8}],
            "grid": {"rank": [4, 16, 32], "seed": [0, 1]},
        }
    )
    ids = [c.adapter_id for c in zoo]
    assert ids[:2] == ["probe_s0", "custom"]
    assert len(zoo) == 2 + 6
    assert "r16_a32_dora_rs_s0" in ids and "r32_a64_dora_rs_s1" in ids
    by_id = {c.adapter_id: c for c in zoo}
    assert by_id["r4_a8_dora_rs_s1"].alpha == 8.0 and by_id["r4_a8_dora_rs_s1"].seed == 1
    assert by_id["custom"].alpha == 16.0


def test_expand_zoo_grid_on_other_fields_gets_distinct_ids():
    zoo = expand_zoo({"defaults": {"rank": 4}, "grid": {"lr": [1e-3, 1e-4]}})
    assert [c.adapter_id for c in zoo] == ["r4_a16_s0_lr0.001", "r4_a16_s0_lr0.0001"]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"members": [{"rank": 4}, {"rank": 4}]}, "Duplicate"),
        ({"members": [{"adapter_id": "a"}, {"adapter_id": "a", "rank": 4}]}, "Duplicate"),
        ({"defaults": {"rank": 4}}, "empty"),
        ({"members": [{"rank": 4}], "extra": 1}, r"unknown setting adapter_training\.zoo\.extra"),
        ({"grid": {"rank": []}}, "non-empty list"),
        ({"members": [{"rank": 4, "bogus": 1}]}, "member #0"),
    ],
)
def test_expand_zoo_errors(params, match):
    with pytest.raises(ValueError, match=match):
        expand_zoo(params)


# --------------------------------------------------------------------------- target modules
