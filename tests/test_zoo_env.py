"""The `zoo` env: >= 48 adapters in families of seeds, and every file it writes under data/zoo/."""

from __future__ import annotations

from tests.conftest import load_conf
from xai_kedro.core.adapters.zoo import expand_zoo
from xai_kedro.core.meta.adapters.estimation import adapter_families
from xai_kedro.core.meta.adapters.settings import EstimationSettings

MIN_ADAPTERS = 48


def _paths(value: object, key: str = "") -> list[tuple[str, str]]:
    """(key, value) of every string under ``value`` that looks like a data path."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, f"{key}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths(v, f"{key}[{i}]")]
    return [(key, value)] if isinstance(value, str) and value.startswith("data/") else []


def test_zoo_has_48_adapters_in_seed_families() -> None:
    params = load_conf("zoo", "parameters")
    configs = expand_zoo(params["adapter_training"]["zoo"])
    assert len(configs) >= MIN_ADAPTERS
    ids = [c.adapter_id for c in configs]
    estimation = params["meta_learning"]["accuracy_estimation"]
    pattern = EstimationSettings.from_params(estimation).family_pattern
    families = adapter_families(ids, pattern)
    sizes = families.value_counts()
    assert (sizes >= 2).all(), "every config needs several seeds"
    for family, group in families.groupby(families):
        seeds = {c.seed for c in configs if c.adapter_id in set(group.index)}
        assert len(seeds) == len(group), f"{family}: members differ in more than the seed"
    # Issue 31: the families span capacity (ranks, roles, DoRA/rsLoRA), training length from
    # under- to over-fitted, and augmentations that move robustness to one shift each.
    assert {c.rank for c in configs} >= {0, 4, 8, 16, 32}
    assert any(c.use_dora for c in configs) and any(c.use_rslora for c in configs)
    assert len({c.target_roles for c in configs}) >= 3
    assert len({c.lr for c in configs}) >= 2
    assert min(c.epochs for c in configs) <= 2 and max(c.epochs for c in configs) >= 30
    augmentations = [c.augmentation for c in configs]
    assert any(a.is_identity for a in augmentations)
    for name in ("noise_std", "blur_sigma", "cutout"):
        assert any(getattr(a, name) > 0 for a in augmentations), name
    assert any(a.contrast >= 0.8 for a in augmentations)
    injected = set(params["knowledge_injection"]["adapters"])
    assert injected <= set(ids)


def _all_paths(env: str) -> dict[str, str]:
    return dict(_paths(load_conf(env, "catalog")) + _paths(load_conf(env, "parameters")))


def test_zoo_moves_every_base_path_under_data_zoo() -> None:
    """conf/zoo/globals.yml alone relocates the run: every catalog path and path parameter of
    the zoo env is the base env's with data/ replaced by data/zoo/, so nothing is overwritten."""
    base, zoo = _all_paths("base"), _all_paths("zoo")
    assert base and set(zoo) == set(base)
    assert not [p for p in base.values() if p.startswith("data/zoo/")]
    moved = {key: "data/zoo/" + path.removeprefix("data/") for key, path in base.items()}
    assert zoo == moved
