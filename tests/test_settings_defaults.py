"""Defaults live in one place: the settings classes. `conf/base` states only what it changes.

Every settings block is a `Settings` dataclass whose fields carry the defaults (and whose
docstring says what they mean); `conf/base/parameters_*.yml` holds the base environment's own
choices. A value restated in conf/base would be a second, hand-kept copy that silently stops
being the default when the class changes, so this test fails on it, and on any key the class
does not know (a renamed setting must not leave a dead key behind).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

import pytest

import xai_kedro
from tests.conftest import load_conf
from xai_kedro.core.common.settings import Settings

# Packages whose modules declare settings blocks (pipelines only build them).
SETTINGS_PACKAGES = ("xai_kedro.core", "xai_kedro.spark", "xai_kedro.integration")


def _all_settings_classes() -> list[type[Settings]]:
    for info in pkgutil.walk_packages(xai_kedro.__path__, "xai_kedro."):
        if info.name.startswith(SETTINGS_PACKAGES):
            importlib.import_module(info.name)
    found: list[type[Settings]] = []
    stack = list(Settings.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.PATH and dataclasses.is_dataclass(cls) and not cls.__module__.startswith("tests"):
            found.append(cls)
    return sorted(set(found), key=lambda c: c.PATH)


def _block(params: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    node: Any = params
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


def _plain(value: Any) -> Any:
    """Compare YAML and Python values alike: tuples as lists, settings objects as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


SETTINGS_CLASSES = _all_settings_classes()
BASE = load_conf("base", "parameters")


def test_every_settings_block_is_found():
    paths = {cls.PATH for cls in SETTINGS_CLASSES}
    assert {"xai_silver.engine", "meta_learning.meta_learners", "backbone.pretrain"} <= paths


@pytest.mark.parametrize("cls", SETTINGS_CLASSES, ids=lambda c: c.PATH)
def test_conf_base_restates_no_default(cls):
    block = _block(BASE, cls.PATH)
    if block is None:
        pytest.skip(f"{cls.PATH} is not set in conf/base")
    cls.from_params(block)  # every key is known and every value valid
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    restated = [
        f"{cls.PATH}.{name}: {block[name]!r}"
        for name, field in fields.items()
        if name in block and _plain(block[name]) == _plain(_default(field))
    ]
    assert not restated, (
        f"conf/base restates the defaults of {cls.__module__}.{cls.__name__}: delete them "
        f"there (the class is the one place for defaults): {restated}"
    )
