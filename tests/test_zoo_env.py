"""The `zoo` env: >= 48 adapters in families of seeds, and every file it writes under data/zoo/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.config import OmegaConfigLoader

from xai_kedro.core.adapters.zoo import expand_zoo
from xai_kedro.core.meta.estimation import adapter_families
from xai_kedro.settings import CONFIG_LOADER_ARGS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIN_ADAPTERS = 48


@pytest.fixture(scope="module")
def zoo_conf() -> OmegaConfigLoader:
    return OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="zoo", **CONFIG_LOADER_ARGS)


def _paths(value: object, key: str = "") -> list[tuple[str, str]]:
    """(key, value) of every string under ``value`` that looks like a data path."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, f"{key}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _paths(v, f"{key}[{i}]")]
    return [(key, value)] if isinstance(value, str) and value.startswith("data/") else []


def test_zoo_has_48_adapters_in_seed_families(zoo_conf: OmegaConfigLoader) -> None:
    params = zoo_conf["parameters"]
    configs = expand_zoo(params["adapter_training"]["zoo"])
    assert len(configs) >= MIN_ADAPTERS
    ids = [c.adapter_id for c in configs]
    pattern = params["meta_learning"]["accuracy_estimation"]["family_pattern"]
    families = adapter_families(ids, pattern)
    sizes = families.value_counts()
    assert (sizes >= 2).all(), "every config needs several seeds"
    for family, group in families.groupby(families):
        seeds = {c.seed for c in configs if c.adapter_id in set(group.index)}
        assert len(seeds) == len(group), f"{family}: members differ in more than the seed"
    assert {c.rank for c in configs} >= {0, 2, 4, 8, 16, 32}
    assert any(c.use_dora for c in configs) and any(c.use_rslora for c in configs)
    assert len({c.target_roles for c in configs}) >= 3
    assert len({c.lr for c in configs}) >= 3 and len({c.epochs for c in configs}) >= 2
    assert len({c.dropout for c in configs}) >= 2
    injected = set(params["knowledge_injection"]["adapters"])
    assert injected <= set(ids)


def test_zoo_writes_only_under_data_zoo(zoo_conf: OmegaConfigLoader) -> None:
    catalog = zoo_conf["catalog"]  # base entries the zoo file lacks show up here with base paths
    own = yaml.safe_load((PROJECT_ROOT / "conf" / "zoo" / "catalog.yml").read_text())
    missing = sorted(set(catalog) - set(own))
    assert not missing, f"conf/base grew entries: copy them into conf/zoo/catalog.yml: {missing}"
    outside = [(k, v) for k, v in _paths(catalog) + _paths(zoo_conf["parameters"])]
    outside = [(k, v) for k, v in outside if not v.startswith("data/zoo/")]
    assert not outside, f"zoo settings that write outside data/zoo/: {outside}"
