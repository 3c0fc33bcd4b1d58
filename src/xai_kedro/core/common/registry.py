"""One registry type for every extension point: name -> entry, one error, one plugin loader.

Metrics, explainers, corruptions, sources, meta-learners, label-free estimators, generators
(and whatever a later extension point adds) are each one `Registry`. An unknown name always
fails the same way, naming the setting the user wrote it in and every known name, and a user's
own module of registrations is imported by the same loader everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from xai_kedro.core.common.errors import UserError

T = TypeVar("T")
_NO_ENTRY = object()


class UnknownNameError(UserError, ValueError):
    """A name that no registration declared (a typo in conf/ or a plugin not listed)."""


class PluginImportError(UserError, ImportError):
    """A plugin module named in conf/ that cannot be imported."""


class Registry(Generic[T]):
    """Entries by name, in registration order.

    kind: what an entry is, for messages ("explainer"). setting: the parameters path where a user
    names an entry ("xai_silver.engine.explainer"), so the error says where to fix it.
    builtins: modules whose import registers the built-in entries; imported on first lookup so a
    registry can live in a light module while its entries live in heavier ones.
    """

    def __init__(
        self,
        kind: str,
        *,
        setting: str = "",
        builtins: Iterable[str] = (),
        hint: str = "",
    ) -> None:
        self.kind = kind
        self.setting = setting
        self.hint = hint
        self._builtins = tuple(builtins)
        self._builtins_loaded = not self._builtins
        self._entries: dict[str, T] = {}

    # ------------------------------------------------------------------------ declaring
    def register(self, name: str, entry: T = _NO_ENTRY) -> T | Callable[[T], T]:  # type: ignore[assignment]
        """`register(name, entry)` adds `entry`; `@register(name)` adds the decorated object.

        Registering a second, different entry under a name is an error (two plugins must not
        silently shadow each other); re-registering the same object (a module imported twice)
        is not.
        """
        if entry is _NO_ENTRY:

            def decorate(obj: T) -> T:
                self._add(name, obj)
                return obj

            return decorate
        self._add(name, entry)
        return entry

    def _add(self, name: str, entry: T) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        known = self._entries.get(name, _NO_ENTRY)
        if known is not _NO_ENTRY and known is not entry and not _same_definition(known, entry):
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        """Remove `name` (tests that register a temporary entry clean up with this)."""
        self._entries.pop(name, None)

    # ------------------------------------------------------------------------ looking up
    def get(self, name: str) -> T:
        """The entry `name`; an unknown name names the setting and every known name."""
        self._load_builtins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        where = f"{self.setting}: " if self.setting else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}unknown {self.kind} {name!r}; known: {', '.join(self.names())}{hint}"

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        self._load_builtins()
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self._load_builtins()
        return list(self._entries.items())

    def values(self) -> list[T]:
        self._load_builtins()
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    # ------------------------------------------------------------------------ plugins
    def load_plugins(self, modules: Iterable[str], setting: str | None = None) -> None:
        """Import the user's modules so their registrations run (see `load_plugins`)."""
        self._load_builtins()
        load_plugins(modules, setting or self.setting)

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # before importing: the modules register into self
        for module in self._builtins:
            importlib.import_module(module)


def _same_definition(a: object, b: object) -> bool:
    """The same function defined again (a module re-imported, e.g. by importlib.reload)."""
    return (
        getattr(a, "__module__", None) is not None
        and getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) is not None
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


def load_plugins(modules: Iterable[str] | None, setting: str = "") -> None:
    """Import each module named in conf/ so its `@register...` declarations run.

    A module that cannot be imported is one clear error naming the setting and the module.
    """
    for module in modules or ():
        if not isinstance(module, str) or not module:
            raise PluginImportError(f"{setting}: a plugin must be a module name, got {module!r}")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            where = f"{setting}: " if setting else ""
            raise PluginImportError(
                f"{where}cannot import plugin module {module!r}: {exc}"
            ) from exc
