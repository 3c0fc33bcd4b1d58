"""The shared settings contract: one unknown-key message, built once, validated in the class."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from xai_kedro.core.common.settings import Settings, SettingsError, check_choice, check_keys


@dataclass(frozen=True)
class _Block(Settings):
    PATH = "stage.block"
    steps: int = 4
    name: str = "a"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_from_params_uses_defaults_and_overrides():
    assert _Block.from_params(None) == _Block()
    assert _Block.from_params({"steps": 7}).steps == 7
    block = _Block(steps=2)
    assert _Block.from_params(block) is block


def test_unknown_keys_name_their_path_and_the_allowed_keys():
    with pytest.raises(SettingsError) as err:
        _Block.from_params({"step": 3, "nme": "x"})
    assert str(err.value) == (
        "unknown settings stage.block.nme, stage.block.step; allowed under stage.block: name, steps"
    )


def test_invalid_values_name_the_block():
    with pytest.raises(SettingsError, match=r"stage.block: steps must be >= 1, got 0"):
        _Block.from_params({"steps": 0})
    with pytest.raises(SettingsError, match="must be a mapping"):
        _Block.from_params([1, 2])


def test_check_keys_with_explicit_path():
    check_keys({"a": 1}, ["a", "b"], "x")
    with pytest.raises(SettingsError, match=r"unknown setting x.c; allowed under x: a, b"):
        check_keys({"c": 1}, ["a", "b"], "x")


def test_check_choice_names_the_setting_and_the_choices():
    check_choice("a", ("a", "b"), "x.mode")
    with pytest.raises(ValueError, match=r"x.mode 'c' not in \('a', 'b'\)"):
        check_choice("c", ("a", "b"), "x.mode")
