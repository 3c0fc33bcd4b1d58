"""The one registry contract, and every extension point's registry honouring it."""

from __future__ import annotations

import sys
import types

import pytest

from xai_kedro.core.common.registry import (
    PluginImportError,
    Registry,
    UnknownNameError,
    load_plugins,
)


def test_register_get_names_in_order():
    reg: Registry[int] = Registry("widget", setting="things.widget")
    reg.register("b", 2)

    @reg.register("a")
    def a() -> int:
        return 1

    assert reg.names() == ("b", "a")
    assert reg.get("b") == 2
    assert reg.get("a") is a
    assert "a" in reg and "c" not in reg
    assert len(reg) == 2 and list(reg) == ["b", "a"]


def test_unknown_name_names_setting_and_known_names():
    reg: Registry[int] = Registry("widget", setting="things.widget", hint="add one with @w")
    reg.register("x", 1)
    reg.register("y", 2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("z")
    assert str(err.value) == "things.widget: unknown widget 'z'; known: x, y (add one with @w)"
    assert isinstance(err.value, ValueError)


def test_duplicate_names_are_an_error_but_reimport_is_not():
    reg: Registry[object] = Registry("widget")
    entry = object()
    reg.register("x", entry)
    reg.register("x", entry)  # the same object again: a module imported twice
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("x", object())


def test_builtins_are_imported_on_first_lookup(monkeypatch):
    reg: Registry[int] = Registry("widget", builtins=["fake_widgets_builtin"])
    module = types.ModuleType("fake_widgets_builtin")
    module.__dict__["loaded"] = True
    imported = []

    def fake_import(name):
        imported.append(name)
        reg.register("builtin", 7)
        return module

    monkeypatch.setattr("importlib.import_module", fake_import)
    assert imported == []
    assert reg.get("builtin") == 7
    assert reg.names() == ("builtin",)
    assert imported == ["fake_widgets_builtin"]


def test_plugin_loader_imports_and_names_bad_modules(tmp_path, monkeypatch):
    (tmp_path / "my_widgets.py").write_text("REGISTERED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins(["my_widgets"], "things.plugins")
    assert sys.modules["my_widgets"].REGISTERED
    with pytest.raises(
        PluginImportError, match=r"things.plugins: cannot import plugin module 'nope_x'"
    ):
        load_plugins(["nope_x"], "things.plugins")
    with pytest.raises(PluginImportError, match="must be a module name"):
        load_plugins([3], "things.plugins")
