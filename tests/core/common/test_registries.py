"""Every extension point's registry honours the one `Registry` contract."""

from __future__ import annotations

import importlib

import pytest

from xai_kedro.core.common.registry import Registry, UnknownNameError

# (module, attribute): one row per extension point (docs/architecture.md, "Extension points").
EXTENSION_POINTS = [
    ("xai_kedro.core.xai.metrics", "XAI_METRICS"),
    ("xai_kedro.core.xai.explainers", "EXPLAINERS"),
    ("xai_kedro.core.robustness.corruptions", "CORRUPTIONS"),
    ("xai_kedro.core.data.sources", "SOURCES"),
    ("xai_kedro.core.meta.prediction.learners", "LEARNERS"),
    ("xai_kedro.core.meta.adapters.estimators", "ESTIMATORS"),
    ("xai_kedro.core.injection.generator_api", "GENERATORS"),
    ("xai_kedro.core.deploy.predictor", "EXPORTERS"),
]


@pytest.mark.parametrize(
    "module, attribute", EXTENSION_POINTS, ids=[a for _, a in EXTENSION_POINTS]
)
def test_every_extension_point_is_a_registry_with_the_one_contract(module, attribute):
    registry = getattr(importlib.import_module(module), attribute)
    assert isinstance(registry, Registry)
    names = registry.names()
    assert names, f"{attribute} has no built-in entries"
    assert len(set(names)) == len(names)
    assert all(isinstance(name, str) and name for name in names)
    entries = dict(registry.items())
    for name in names:
        assert name in registry
        assert registry.get(name) is entries[name]
    assert registry.setting, f"{attribute} must name the setting users write its names in"
    with pytest.raises(UnknownNameError) as err:
        registry.get("no_such_entry")
    message = str(err.value)
    assert message.startswith(f"{registry.setting}: unknown {registry.kind} 'no_such_entry'")
    assert f"known: {', '.join(names)}" in message
    assert isinstance(err.value, ValueError)
