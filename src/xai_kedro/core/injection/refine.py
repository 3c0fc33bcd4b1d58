"""The refined trainings of knowledge injection: each selected adapter once per arm and seed.

One training run per arm cannot tell the targeting from training randomness: two runs of the
same config on the same data differ by a few test images. Every arm is therefore trained with
each of `seeds` (the zoo config with its `seed` replaced), and the Gold table's intervals
resample those seeds as well as the test images (`core.injection.measure`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xai_kedro.core.adapters.config import AdapterConfig
from xai_kedro.core.common.settings import Settings
from xai_kedro.core.injection.datasets import ARMS

#: Refined adapter ids: `<zoo adapter id>__<arm>__s<seed>`.
SEPARATOR = "__"


@dataclass(frozen=True)
class RefineSettings(Settings):
    """Where the refined adapters live and the training seeds of every arm
    (parameters `knowledge_injection.refine`).

    zoo_dir: the refined adapters' directory (their cache: a rerun on the same data and config
        is skipped).
    seeds: the training seeds of each arm; at least 2 (a seed-to-seed spread needs two), 3 or
        more for an interval that says something about training randomness. Cost: one training
        per adapter x arm (3) x seed.
    """

    PATH = "knowledge_injection.refine"

    zoo_dir: str
    seeds: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        seeds = tuple(int(s) for s in self.seeds)
        if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(
                f"seeds must be at least 2 distinct non-negative integers, got {list(self.seeds)}"
            )
        object.__setattr__(self, "seeds", seeds)


def refined_id(adapter_id: str, arm: str, seed: int) -> str:
    return f"{adapter_id}{SEPARATOR}{arm}{SEPARATOR}s{int(seed)}"


def refined_configs(base: AdapterConfig, arm: str, seeds: Iterable[int]) -> list[AdapterConfig]:
    """The zoo config of `base` once per seed, under its refined id: only the seed changes."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    return [
        AdapterConfig.from_params(
            {**base.to_dict(), "adapter_id": refined_id(base.adapter_id, arm, s), "seed": int(s)}
        )
        for s in seeds
    ]
