"""Corruption presets, config overrides and per-image seeds."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.core.robustness.test_corruptions import IMAGENET_C_VALUES, REFERENCE_VALUES, _seeds
from xai_kedro.core.robustness import presets as P


def test_reference_preset_has_the_reference_values() -> None:
    specs = P.build_specs("reference")
    assert len(specs) == 9
    for corruption, values in REFERENCE_VALUES.items():
        rows = [s for s in specs if s.corruption == corruption]
        assert [s.severity for s in rows] == ["shallow", "medium", "heavy"]
        assert [s.value for s in rows] == values
        assert all(s.fn_name == corruption for s in rows)
    assert {s.param for s in specs} == {"sigma", "radius", "factor"}
    assert P.build_specs() == specs  # reference is the default


def test_imagenet_c_preset_has_paper_values() -> None:
    specs = P.build_specs("imagenet_c")
    assert len(specs) == 15
    for corruption, values in IMAGENET_C_VALUES.items():
        rows = [s for s in specs if s.corruption == corruption]
        assert [s.severity for s in rows] == ["1", "2", "3", "4", "5"]
        assert [s.value for s in rows] == values
        assert all(s.fn_name == f"imagenet_c_{corruption}" and s.param == "c" for s in rows)


def test_overrides_replace_and_extend() -> None:
    specs = P.build_specs(
        "reference",
        [
            {"corruption": "gaussian_noise", "severity": "heavy", "param": "std", "value": 60},
            {"corruption": "contrast", "severity": "extreme", "fn": "contrast", "value": 0.05},
            {"corruption": "blur_c", "severity": "3", "fn": "imagenet_c_gaussian_blur", "value": 3},
        ],
    )
    assert len(specs) == 11
    heavy = [s for s in specs if (s.corruption, s.severity) == ("gaussian_noise", "heavy")]
    assert heavy == [P.CorruptionSpec("gaussian_noise", "heavy", "std", 60.0, "gaussian_noise")]
    assert specs[2] == heavy[0]  # replaced in place
    assert specs[-2] == P.CorruptionSpec("contrast", "extreme", "value", 0.05, "contrast")
    assert specs[-1].fn_name == "imagenet_c_gaussian_blur"
    # a bare value keeps the replaced spec's fn and param
    c3 = P.build_specs(
        "imagenet_c", [{"corruption": "gaussian_noise", "severity": "3", "value": 0.2}]
    )
    assert c3[2] == P.CorruptionSpec("gaussian_noise", "3", "c", 0.2, "imagenet_c_gaussian_noise")
    only = P.build_specs(None, [{"corruption": "contrast", "severity": "x", "value": 0.5}])
    assert [s.fn_name for s in only] == ["contrast"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        only[0].value = 1.0  # type: ignore[misc]


def test_build_specs_errors() -> None:
    with pytest.raises(ValueError, match="unknown corruption preset 'nope'"):
        P.build_specs("nope")
    with pytest.raises(ValueError, match="unknown corruption fn 'sharpen'"):
        P.build_specs(None, [{"corruption": "sharpen", "severity": "1", "value": 2.0}])
    with pytest.raises(ValueError, match=r"missing keys \['value'\]"):
        P.build_specs("reference", [{"corruption": "contrast", "severity": "heavy"}])
    with pytest.raises(
        ValueError, match=r"unknown setting ood\.corruptions\[0\]\.sevrity; allowed under"
    ):
        P.build_specs(
            None, [{"corruption": "contrast", "sevrity": "1", "severity": "1", "value": 1}]
        )
    with pytest.raises(ValueError, match="must be a number"):
        P.build_specs(None, [{"corruption": "contrast", "severity": "1", "value": "high"}])
    with pytest.raises(ValueError, match="sigma must be >= 0"):  # dry run catches bad values
        P.build_specs(None, [{"corruption": "gaussian_noise", "severity": "1", "value": -3}])
    with pytest.raises(TypeError, match="must be a mapping"):
        P.build_specs("reference", ["contrast"])
    with pytest.raises(ValueError, match="no corruption specs"):
        P.build_specs(None, [])
    with pytest.raises(ValueError, match="unknown corruption fn"):
        P.apply_spec(
            P.CorruptionSpec("x", "1", "v", 1.0, "nope"), torch.zeros(1, 3, 4, 4), _seeds(1)
        )


def test_corruption_seed_is_stable_and_distinct() -> None:
    # pinned: changing the derivation would silently change every published corrupted image
    assert P.corruption_seed("0123456789abcdef", "gaussian_noise", "shallow") == 1080098105190025692
    assert P.corruption_seed("0123456789abcdef", "gaussian_noise", "shallow", 7) == (
        8605707883908427665
    )
    base = ("0123456789abcdef", "gaussian_noise", "shallow")
    variants = {
        P.corruption_seed(*base),
        P.corruption_seed("0123456789abcdee", *base[1:]),
        P.corruption_seed(base[0], "contrast", base[2]),
        P.corruption_seed(*base[:2], "heavy"),
        P.corruption_seed(*base, base_seed=1),
    }
    assert len(variants) == 5
    assert all(0 <= s < 2**63 for s in variants)
    spec = P.build_specs("reference")[0]
    seeds = P.spec_seeds(["a", "b"], spec, base_seed=3)
    assert seeds.dtype == torch.int64
    assert seeds.tolist() == [P.corruption_seed(i, spec.corruption, spec.severity, 3) for i in "ab"]
