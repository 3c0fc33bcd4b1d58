"""The `shifts` env runs the whole shift suite; base runs a subset of every family."""

from __future__ import annotations

from tests.conftest import load_conf
from xai_kedro.core.robustness.imagenet_c import IMAGENET_C_SHIFTS
from xai_kedro.core.robustness.shifts import NEEDS_WORLD, build_shift_specs


def _specs(env: str) -> list:
    return build_shift_specs(load_conf(env, "parameters")["ood"]["shifts"])


def test_shifts_env_runs_every_corruption_at_every_severity_and_both_backgrounds() -> None:
    specs = _specs("shifts")
    imagenet_c = {(s.shift, s.severity) for s in specs if s.family == "imagenet_c"}
    assert imagenet_c == {(n, str(k)) for n in IMAGENET_C_SHIFTS for k in range(1, 6)}
    background = [s for s in specs if s.family == "background"]
    assert {s.shift for s in background} == {"counter_biased", "novel_texture"}
    assert len(background) == 8
    params = load_conf("shifts", "parameters")
    assert params["ood"]["world"] == "data/shifts/01_raw/synthetic/manifest.json"
    assert params["ood"]["preset"] == "reference"  # the reference grid stays


def test_base_runs_a_subset_of_each_family() -> None:
    specs = _specs("base")
    assert {s.family for s in specs} == {"background", "imagenet_c"}
    assert {s.shift for s in specs if s.family == "background"} == {
        "counter_biased",
        "novel_texture",
    }
    assert len(specs) <= 12  # the OOD stage's cost grows with the conditions (docs/benchmarks.md)
    assert load_conf("base", "parameters")["ood"]["world"] == "data/01_raw/synthetic/manifest.json"


def test_envs_without_a_synthetic_source_run_no_shift_that_needs_its_world() -> None:
    for env in ("paper", "cluster", "byo"):
        params = load_conf(env, "parameters")
        assert params["ingestion"]["source"]["kind"] != "synthetic", env
        needing = {s.shift for s in _specs(env)} & set(NEEDS_WORLD)
        assert not needing, f"{env} runs {needing} without a synthetic world"
        assert params["ood"]["world"] is None, env


def test_paper_composites_pets_on_novel_textures_by_their_trimaps() -> None:
    background = {s.shift for s in _specs("paper") if s.family == "background"}
    assert background == {"novel_texture"}
    assert load_conf("paper", "parameters")["ingestion"]["source"]["kind"] == "oxford_pet"
