"""One member of the adapter zoo (`AdapterConfig`) and its cache key (`config_hash`).

rank 0 is the linear-probe baseline (head only); alpha may be written as a multiple of the rank.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xai_kedro.core.common.settings import Settings, SettingsError, check_keys
from xai_kedro.core.data.augment import AugmentConfig
from xai_kedro.core.models.classifier import ROLE_SUFFIXES

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("cosine", "constant")
# Bump when a change to training semantics must invalidate every cached adapter.
HASH_SCHEMA_VERSION = 1
ADAPTER_FORMAT_VERSION = 1


_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ALPHA_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*r\s*$")


_AUGMENTATION = "adapter_training.zoo.members[].augmentation"


def _parse_roles(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, Iterable):
        items = [str(v).strip() for v in value]
    else:
        raise TypeError(f"target_roles must be a list or comma-separated string, got {value!r}")
    unknown = sorted(set(items) - set(ROLE_SUFFIXES))
    if unknown:
        raise ValueError(f"Unknown target roles {unknown}; expected some of {list(ROLE_SUFFIXES)}")
    # Canonical order and no duplicates: the same set of targets always hashes the same.
    return tuple(role for role in ROLE_SUFFIXES if role in items)


def _parse_alpha(value: Any, rank: int) -> float:
    """A number, or "2r"/"r"-style strings meaning a multiple of the rank (the reference experiment: 2r)."""
    if isinstance(value, str):
        match = _ALPHA_PATTERN.match(value)
        if not match:
            raise ValueError(f"alpha must be a number or like '2r' (times rank), got {value!r}")
        factor = float(match.group(1)) if match.group(1) else 1.0
        return factor * rank
    return float(value)


@dataclass(frozen=True)
class AdapterConfig(Settings):
    """One member of the adapter zoo; every field but `adapter_id` defines what gets trained.

    rank 0 is the linear probe (head only, no LoRA); the LoRA fields are then ignored.
    alpha may be given as "2r" (two times the rank). lr_schedule "cosine" = linear warmup over
    `warmup_ratio` of the optimizer steps then cosine decay to 0; "constant" = warmup then flat.
    `momentum` is only used by SGD. `grad_accumulation` micro-batches make one optimizer step
    (effective batch = batch_size * grad_accumulation).
    """

    PATH = "adapter_training.zoo.members[]"

    adapter_id: str
    rank: int = 0
    alpha: float = 16.0
    use_dora: bool = False
    use_rslora: bool = False
    target_roles: tuple[str, ...] = ("query", "value")
    dropout: float = 0.0
    optimizer: str = "adamw"
    lr: float = 3e-4
    weight_decay: float = 0.01
    momentum: float = 0.9
    lr_schedule: str = "cosine"
    warmup_ratio: float = 0.1
    epochs: int = 15
    batch_size: int = 16
    grad_accumulation: int = 1
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise the fields once here
        if not isinstance(self.adapter_id, str) or not _ID_PATTERN.match(self.adapter_id):
            raise ValueError(
                f"adapter_id must match {_ID_PATTERN.pattern} (it names a directory), "
                f"got {self.adapter_id!r}"
            )
        if int(self.rank) != self.rank or self.rank < 0:
            raise ValueError(f"rank must be a non-negative int, got {self.rank!r}")
        set_(self, "rank", int(self.rank))
        set_(self, "alpha", _parse_alpha(self.alpha, self.rank))
        set_(self, "target_roles", _parse_roles(self.target_roles))
        set_(self, "augmentation", AugmentConfig.from_params(self.augmentation, _AUGMENTATION))
        for name in ("use_dora", "use_rslora"):
            set_(self, name, bool(getattr(self, name)))
        for name in ("dropout", "lr", "weight_decay", "momentum", "warmup_ratio"):
            set_(self, name, float(getattr(self, name)))
        for name in ("epochs", "batch_size", "grad_accumulation", "seed"):
            set_(self, name, int(getattr(self, name)))
        if self.rank > 0:
            if self.alpha <= 0:
                raise ValueError(f"alpha must be > 0 for a LoRA adapter, got {self.alpha}")
            if not self.target_roles:
                raise ValueError("A LoRA adapter (rank > 0) needs at least one target role")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.lr <= 0 or self.weight_decay < 0 or not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(
                f"need lr > 0, weight_decay >= 0, warmup_ratio in [0, 1); got lr={self.lr}, "
                f"weight_decay={self.weight_decay}, warmup_ratio={self.warmup_ratio}"
            )
        if min(self.epochs, self.batch_size, self.grad_accumulation) < 1:
            raise ValueError("epochs, batch_size and grad_accumulation must all be >= 1")

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any] | AdapterConfig | None = None, path: str = ""
    ) -> AdapterConfig:
        """From parameters (YAML): the shared unknown-key check, and a missing `adapter_id`
        named as such rather than as a missing constructor argument."""
        if isinstance(params, Mapping) and "adapter_id" not in params:
            check_keys(params, cls.setting_names(), path or cls.PATH)
            raise SettingsError(f"{path or cls.PATH}: adapter config needs an adapter_id")
        return super().from_params(params, path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples) that `from_params` turns back into an equal config."""
        out = dataclasses.asdict(self)
        out["target_roles"] = list(self.target_roles)
        out["augmentation"] = self.augmentation.to_dict()
        return out

    @property
    def is_probe(self) -> bool:
        return self.rank == 0


def _training_fields(cfg: AdapterConfig) -> dict[str, Any]:
    """What determines the trained weights; LoRA fields are blanked for linear probes."""
    fields = cfg.to_dict()
    fields.pop("adapter_id")
    if cfg.rank == 0:
        fields.update(alpha=0.0, use_dora=False, use_rslora=False, target_roles=[], dropout=0.0)
    if cfg.optimizer != "sgd":
        fields["momentum"] = 0.0
    # Augmentation fields added after hash schema 1 count only where they are on: every
    # adapter trained before they existed keeps its cache key (and is not retrained).
    fields["augmentation"] = cfg.augmentation.cache_key_dict()
    return fields


def config_hash(cfg: AdapterConfig, data_fingerprint: str) -> str:
    """sha256 over the canonical JSON of the training fields + the data/backbone fingerprint.

    `adapter_id` is deliberately excluded: it is a name, not a training input, so two members
    with identical settings share a hash (they would train the identical model) and renaming a
    member keeps its hash. `data_fingerprint` must cover everything outside the config that
    changes the weights (training/validation data, backbone weights, input size).
    """
    payload = {
        "schema": HASH_SCHEMA_VERSION,
        "config": _training_fields(cfg),
        "data": str(data_fingerprint),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
