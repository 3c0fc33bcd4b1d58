"""Settings of the deploy and scoring pipelines (parameters `deploy` and `scoring` in conf/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.deploy.choice import ADAPTER_PREFIX, AUTO
from xai_kedro.core.meta.adapters.estimation import OVERALL


@dataclass(frozen=True)
class SelectionRule(Settings):
    """rule: auto | a method of `adapter_selection` | adapter:<id> (`core.deploy.choice`);
    shift: the `adapter_selection` shift the pick is read on (`all` = every corruption)."""

    PATH = "deploy.selection"

    rule: str = AUTO
    shift: str = OVERALL

    def __post_init__(self) -> None:
        if not self.rule or self.rule == ADAPTER_PREFIX:
            raise ValueError("rule must be auto, a selection method or adapter:<id>")


@dataclass(frozen=True)
class PredictorRule(Settings):
    """model / feature_set: `auto` (the best label-free grouped out-of-fold AUC) or a
    `classifier_comparison` model / feature set to restrict the choice to."""

    PATH = "deploy.predictor"

    model: str = AUTO
    feature_set: str = AUTO


@dataclass(frozen=True)
class BackboneRule(Settings):
    """A backbone under `copy_max_mb` is copied into the model; a larger one is referenced by
    `path` (null: the directory the run loaded it from), which must exist where it is served."""

    PATH = "deploy.backbone"

    copy_max_mb: float = 200.0
    path: str | None = None


@dataclass(frozen=True)
class RegistryRule(Settings):
    """register: register the logged model as `model_name` (else only log it); uri/experiment:
    the store used when no tracked run is open (tracking disabled)."""

    PATH = "deploy.mlflow"

    register: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "xai-kedro"


@dataclass(frozen=True)
class DeploySettings(Settings):
    """The `deploy` block: what is packaged, where the bundle is written, how it is registered."""

    PATH = "deploy"

    model_name: str = "xai-kedro-selected"
    bundle_dir: str | None = None  # required: conf/ places it under the env's data_root
    selection: Any = field(default_factory=SelectionRule)
    predictor: Any = field(default_factory=PredictorRule)
    backbone: Any = field(default_factory=BackboneRule)
    mlflow: Any = field(default_factory=RegistryRule)

    def __post_init__(self) -> None:
        if not self.model_name or not self.bundle_dir:
            raise ValueError("model_name and bundle_dir must be set")
        for name, cls in (("selection", SelectionRule), ("predictor", PredictorRule),
                          ("backbone", BackboneRule), ("mlflow", RegistryRule)):  # fmt: skip
            block = cls.from_params(getattr(self, name), path=f"{self.PATH}.{name}")
            object.__setattr__(self, name, block)


@dataclass(frozen=True)
class FolderRunSettings(Settings):
    """What a run of the registered model over a folder needs (the `scoring` and `monitor`
    blocks): the folder (an ingestion source), the model (null: the one the deploy pipeline
    registered), where the workers' copy of it lives, and Spark settings."""

    source: Mapping[str, Any] = field(default_factory=dict)
    model_uri: str | None = None
    model_dir: str | None = None  # required: conf/ places it under the env's data_root
    max_file_bytes: int = 512 * 1024 * 1024
    partitions: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        for key in ("kind", "root"):
            if not self.source.get(key):
                raise ValueError(f"source.{key} must be set")
        if not self.model_dir:
            raise ValueError("model_dir must be set")
        if self.max_file_bytes <= 0 or self.partitions <= 0:
            raise ValueError("max_file_bytes and partitions must be > 0")


@dataclass(frozen=True)
class ScoringSettings(FolderRunSettings):
    """The `scoring` block (fields: `FolderRunSettings`)."""

    PATH = "scoring"
