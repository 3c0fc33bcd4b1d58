"""One declaration per output column: from it derive the pandas column order, the Spark schema
and which columns may enter a deployable meta-learner."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DTYPES = ("string", "int", "double", "bool", "float_array", "binary")
# What a column is, for the meta-learning: keys and labels never enter a model; `confidence`
# and `xai` columns are candidate features; `analysis` columns need ground truth (object masks).
ROLES = ("key", "label", "prediction", "confidence", "xai", "analysis", "payload")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    description: str
    role: str = "prediction"
    nullable: bool = False
    label_free: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name}: dtype {self.dtype!r} not in {DTYPES}")
        if self.role not in ROLES:
            raise ValueError(f"column {self.name}: role {self.role!r} not in {ROLES}")


def names(columns: Iterable[Column], *, without_keys: bool = False) -> list[str]:
    return [c.name for c in columns if not (without_keys and c.role == "key")]


def of_role(columns: Sequence[Column], *roles: str) -> tuple[str, ...]:
    return tuple(c.name for c in columns if c.role in roles)


# The key every per-(image, adapter) Silver table starts with.
IMAGE_ADAPTER_KEYS: tuple[Column, ...] = (
    Column("image_id", "string", "Bronze image key", role="key"),
    Column("adapter_id", "string", "zoo member", role="key"),
)
