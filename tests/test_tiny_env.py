"""The `tiny` env (conf/tiny): the tests' small end-to-end run, which a user can run too, with
every file it writes under its own data root."""

from __future__ import annotations

from tests.conftest import TINY_DATA_ROOT, TINY_ENV, load_conf
from xai_kedro.core.adapters.zoo import expand_zoo
from xai_kedro.core.robustness.shifts import build_shift_specs


def _paths(value: object, key: str = "") -> dict[str, str]:
    """key -> value of every string under ``value`` that looks like a data path."""
    if isinstance(value, dict):
        return {p: v for k, item in value.items() for p, v in _paths(item, f"{key}.{k}").items()}
    if isinstance(value, list):
        return {
            p: v for i, item in enumerate(value) for p, v in _paths(item, f"{key}[{i}]").items()
        }
    return {key: value} if isinstance(value, str) and value.startswith("data/") else {}


def _all_paths(env: str) -> dict[str, str]:
    return {**_paths(load_conf(env, "catalog")), **_paths(load_conf(env, "parameters"))}


def test_tiny_moves_every_base_path_under_its_data_root() -> None:
    base, tiny = _all_paths("base"), _all_paths(TINY_ENV)
    assert TINY_DATA_ROOT == "data/tiny"
    assert base and set(tiny) == set(base)
    moved = {key: f"{TINY_DATA_ROOT}/" + path.removeprefix("data/") for key, path in base.items()}
    assert tiny == moved


def test_tiny_is_small_and_differs_from_base_only_in_size() -> None:
    base, tiny = load_conf("base", "parameters"), load_conf(TINY_ENV, "parameters")
    assert set(tiny) == set(base)
    assert [c.adapter_id for c in expand_zoo(tiny["adapter_training"]["zoo"])] == [
        "linear_probe", "r2_qv", "r4_dora",
    ]  # fmt: skip
    synthetic = tiny["ingestion"]["source"]["synthetic"]
    assert synthetic["num_classes"] == 3 and synthetic["image_size"] == 32
    assert tiny["backbone"]["pretrain"]["model"]["num_layers"] == 2
    assert tiny["xai_silver"]["explainers"] == base["xai_silver"]["explainers"]
    # every ood setting but its one path (moved under data/tiny/, checked above) and a smaller
    # shift list: one shift of each of base's families
    assert {**tiny["ood"], "world": None, "shifts": None} == {
        **base["ood"],
        "world": None,
        "shifts": None,
    }
    tiny_shifts, base_shifts = (
        build_shift_specs(tiny["ood"]["shifts"]),
        build_shift_specs(base["ood"]["shifts"]),
    )
    assert {s.family for s in tiny_shifts} == {s.family for s in base_shifts}
    assert len(tiny_shifts) < len(base_shifts)
