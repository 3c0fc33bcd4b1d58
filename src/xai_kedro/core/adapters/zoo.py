"""Zoo parameters (explicit members and a cartesian grid) -> adapter configs with stable ids."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from typing import Any

from xai_kedro.core.adapters.config import AdapterConfig
from xai_kedro.core.common.settings import check_keys

ZOO_PATH = "adapter_training.zoo"

_ID_ABBREVIATIONS = {
    "dropout": "do",
    "lr": "lr",
    "weight_decay": "wd",
    "momentum": "mom",
    "warmup_ratio": "wu",
    "epochs": "ep",
    "batch_size": "bs",
    "grad_accumulation": "ga",
    "optimizer": "",
    "lr_schedule": "",
}
_ROLE_ABBREVIATIONS = {
    "query": "q",
    "key": "k",
    "value": "v",
    "output": "o",
    "fc1": "f1",
    "fc2": "f2",
}


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def default_adapter_id(cfg: AdapterConfig, extra_fields: Iterable[str] = ()) -> str:
    """Deterministic id like `r16_a32_dora_rs_s0` (`probe_s0` for rank 0).

    `extra_fields` (the grid axes beyond rank/alpha/DoRA/rsLoRA/seed) are appended so that
    grid members differing only in, say, lr get distinct ids (`..._lr0.001`).
    """
    if cfg.rank == 0:
        parts = ["probe"]
    else:
        parts = [f"r{cfg.rank}", f"a{cfg.alpha:g}"]
        if cfg.use_dora:
            parts.append("dora")
        if cfg.use_rslora:
            parts.append("rs")
    parts.append(f"s{cfg.seed}")
    for name in extra_fields:
        if name in {"rank", "alpha", "use_dora", "use_rslora", "seed", "adapter_id"}:
            continue
        value = getattr(cfg, name)
        if name == "target_roles":
            parts.append("t" + "-".join(_ROLE_ABBREVIATIONS[r] for r in value))
        elif name == "augmentation":
            digest = hashlib.sha256(
                json.dumps(value.cache_key_dict(), sort_keys=True).encode()
            ).hexdigest()
            parts.append("aug" + digest[:6])
        else:
            parts.append(_ID_ABBREVIATIONS.get(name, name) + _format_value(value))
    return "_".join(parts)


def _member_config(
    defaults: dict[str, Any], overrides: dict[str, Any], extra: Iterable[str]
) -> AdapterConfig:
    params = {**defaults, **overrides}
    if params.get("adapter_id") is None:
        probe = AdapterConfig.from_params({**params, "adapter_id": "tmp"})
        params["adapter_id"] = default_adapter_id(probe, extra)
    return AdapterConfig.from_params(params)


def expand_zoo(zoo_params: dict[str, Any]) -> list[AdapterConfig]:
    """Zoo parameters -> configs: explicit `members` then the cartesian `grid`, over `defaults`.

    members: list of dicts, each overriding defaults (adapter_id optional, generated otherwise).
    grid: field -> list of values; every combination over the defaults gets a generated id.
    Duplicate adapter ids are an error (set explicit ids to disambiguate).
    """
    if not isinstance(zoo_params, dict):
        raise TypeError(f"zoo parameters must be a dict, got {type(zoo_params).__name__}")
    check_keys(zoo_params, ("defaults", "members", "grid"), ZOO_PATH)
    defaults = dict(zoo_params.get("defaults") or {})
    members = list(zoo_params.get("members") or [])
    grid = dict(zoo_params.get("grid") or {})
    if not members and not grid:
        raise ValueError("The adapter zoo is empty: give `members` and/or a `grid`")

    configs = []
    for i, member in enumerate(members):
        try:
            configs.append(_member_config(defaults, dict(member), ()))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"zoo member #{i} {member}: {exc}") from exc
    if grid:
        axes = list(grid)
        if "adapter_id" in axes:
            raise ValueError("adapter_id cannot be a grid axis")
        for axis, values in grid.items():
            if not isinstance(values, list | tuple) or not values:
                raise ValueError(
                    f"grid axis {axis!r} needs a non-empty list of values, got {values!r}"
                )
        for combo in itertools.product(*(grid[a] for a in axes)):
            overrides = dict(zip(axes, combo, strict=True))
            try:
                configs.append(_member_config({**defaults, "adapter_id": None}, overrides, axes))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"zoo grid point {overrides}: {exc}") from exc

    seen: dict[str, int] = {}
    for cfg in configs:
        seen[cfg.adapter_id] = seen.get(cfg.adapter_id, 0) + 1
    duplicates = sorted(name for name, n in seen.items() if n > 1)
    if duplicates:
        raise ValueError(f"Duplicate adapter_ids in the zoo: {duplicates}; give explicit ids")
    return configs
