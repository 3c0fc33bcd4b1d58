"""Settings objects: one frozen dataclass per configuration block, built and checked once.

A node turns its parameters block into a `Settings` subclass with `from_params` at the edge and
passes the object down; nothing deeper re-reads a dict. Every block rejects unknown keys the same
way, naming the key's full path and the allowed keys, so a typo in conf/ is one clear line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any, ClassVar, Self

from xai_kedro.core.common.errors import UserError


class SettingsError(UserError, ValueError):
    """A configuration block that cannot be used: an unknown key or an invalid value."""


def check_keys(params: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """Unknown keys are an error naming each one by its full path and listing the allowed keys."""
    allowed = list(allowed)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        where = ", ".join(f"{path}.{key}" if path else str(key) for key in unknown)
        raise SettingsError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {where}; "
            f"allowed under {path or 'this block'}: {', '.join(sorted(allowed))}"
        )


def as_mapping(params: Mapping[str, Any] | None, path: str) -> dict[str, Any]:
    """`None` is the empty block; anything else must be a mapping."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise SettingsError(f"{path} must be a mapping of settings, got {type(params).__name__}")
    return dict(params)


class Settings:
    """Mixin for frozen dataclasses: `from_params(block)` with the shared unknown-key check.

    PATH: where the block lives in the parameters ("xai_silver.engine"); messages and the test
    that checks the settings classes against `conf/base` use it. Validation of values belongs in
    the dataclass's `__post_init__`.
    """

    PATH: ClassVar[str] = ""

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | Self | None = None, path: str = "") -> Self:
        if isinstance(params, cls):
            return params
        path = path or cls.PATH
        block = as_mapping(params, path)
        check_keys(block, cls.setting_names(), path)
        try:
            return cls(**block)
        except SettingsError:
            raise
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{path}: {exc}") from exc

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        if not is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be a Settings block")
        return tuple(f.name for f in fields(cls) if f.init)


def check_choice(value: Any, choices: Iterable[Any], name: str) -> None:
    """A setting that takes one of a few named values: anything else names the setting and them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} {value!r} not in {choices}")
