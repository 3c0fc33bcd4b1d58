"""Project pipelines: one per folder under pipelines/, each built only when it is used.

Building a pipeline imports its nodes, and the nodes import torch, transformers and pyspark
(seconds of CPU). `kedro registry list` needs only the names, and `kedro run --pipelines X`
only X, so each entry is a `LazyPipeline` that imports its package on first use.
"""

from __future__ import annotations

import importlib
import importlib.resources
from collections.abc import Callable
from typing import Any

from kedro.pipeline import Pipeline

PIPELINES_PACKAGE = "xai_kedro.pipelines"

# Pipelines that `kedro run` leaves out: each is a documented run of its own after it
# (`kedro run --pipelines knowledge_injection`). Knowledge injection retrains adapters twice
# (targeted and control) and costs about 2 minutes of the `base` run on 2 CPU cores; with it,
# the default run measured 9.6-11.9 min on the same machine, against a 10-minute budget.
# Scoring scores a folder with the model the default run registered (`kedro run --pipelines
# scoring`). The monitor reports on an unlabeled folder (`kedro run --pipelines monitor`).
SEPARATE_RUNS = frozenset({"knowledge_injection", "monitor", "scoring"})


class LazyPipeline(Pipeline):
    """A `Pipeline` whose nodes are made by `build()` the first time anything reads it.

    It skips `Pipeline.__init__`; the first attribute that is not found (every Pipeline method
    reads `self._nodes` and the like) builds the real pipeline and takes over its state.
    """

    def __init__(self, name: str, build: Callable[[], Pipeline]) -> None:  # noqa: D107
        object.__setattr__(self, "_lazy_name", name)
        object.__setattr__(self, "_lazy_build", build)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_lazy_") or self.__dict__.get("_lazy_built"):
            raise AttributeError(attribute)
        built = self._lazy_build()
        if not isinstance(built, Pipeline):
            raise TypeError(
                f"pipeline {self._lazy_name!r}: create_pipeline() returned "
                f"{type(built).__name__}, not a kedro Pipeline"
            )
        self.__dict__.update(built.__dict__)
        self.__dict__["_lazy_built"] = True
        return getattr(self, attribute)

    def __repr__(self) -> str:
        if not self.__dict__.get("_lazy_built"):
            return f"LazyPipeline({self._lazy_name!r}, not built yet)"
        return super().__repr__()


def pipeline_names() -> list[str]:
    """The folders of `xai_kedro.pipelines` that are packages (have an `__init__.py`)."""
    root = importlib.resources.files(PIPELINES_PACKAGE)
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir()
        and not entry.name.startswith(("_", "."))
        and (entry / "__init__.py").is_file()
    )


def _builder(name: str) -> Callable[[], Pipeline]:
    def build() -> Pipeline:
        module = importlib.import_module(f"{PIPELINES_PACKAGE}.{name}")
        return module.create_pipeline()

    return build


def _default(names: list[str], registry: dict[str, Pipeline]) -> Callable[[], Pipeline]:
    def build() -> Pipeline:
        return sum((registry[name] for name in names), Pipeline([]))

    return build


def register_pipelines() -> dict[str, Pipeline]:
    names = pipeline_names()
    registry: dict[str, Pipeline] = {name: LazyPipeline(name, _builder(name)) for name in names}
    default = [name for name in names if name not in SEPARATE_RUNS]
    registry["__default__"] = LazyPipeline("__default__", _default(default, registry))
    return registry
