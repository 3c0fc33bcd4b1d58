"""The adapter zoo: configs, LoRA/DoRA attachment by role, atomic storage, inference loading.

An adapter is the PEFT LoRA (or DoRA) weights on a frozen DINOv2 backbone plus the linear head
of `ViTClassifier`; rank 0 is the linear-probe baseline (head only). Everything is stored as
safetensors + JSON (nothing is unpickled) in one directory per adapter that is published
atomically, so a killed Spark task never leaves a directory that looks complete.

Module names are never hard-coded: LoRA targets are named by role (query, value, fc1, ...) and
resolved against the loaded model, and `build_inference_model` re-resolves stored targets so an
adapter trained under one transformers naming scheme loads under the other.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, LoraModel, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save_file
from torch import nn

from xai_kedro.core.augment import AugmentConfig
from xai_kedro.core.classifier import ROLE_SUFFIXES, ViTClassifier, role_module

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("cosine", "constant")
# Bump when a change to training semantics must invalidate every cached adapter.
HASH_SCHEMA_VERSION = 1
ADAPTER_FORMAT_VERSION = 1

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
HEAD_WEIGHTS = "head.safetensors"
META_FILE = "adapter_meta.json"
COMPLETE_MARKER = "COMPLETE"
PEFT_PREFIX = "base_model.model."  # key prefix of PeftModel.save_pretrained files
ADAPTER_NAME = "default"

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ALPHA_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*r\s*$")
_LAYER_PATTERN = re.compile(r"^(?P<prefix>(?:.*\.)?encoder\.layer)\.(?P<idx>\d+)\.(?P<suffix>.+)$")


# --------------------------------------------------------------------------------------- config
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
    """A number, or "2r"/"r"-style strings meaning a multiple of the rank (seed 001: 2r)."""
    if isinstance(value, str):
        match = _ALPHA_PATTERN.match(value)
        if not match:
            raise ValueError(f"alpha must be a number or like '2r' (times rank), got {value!r}")
        factor = float(match.group(1)) if match.group(1) else 1.0
        return factor * rank
    return float(value)


@dataclass(frozen=True)
class AdapterConfig:
    """One member of the adapter zoo; every field but `adapter_id` defines what gets trained.

    rank 0 is the linear probe (head only, no LoRA); the LoRA fields are then ignored.
    alpha may be given as "2r" (two times the rank). lr_schedule "cosine" = linear warmup over
    `warmup_ratio` of the optimizer steps then cosine decay to 0; "constant" = warmup then flat.
    `momentum` is only used by SGD. `grad_accumulation` micro-batches make one optimizer step
    (effective batch = batch_size * grad_accumulation).
    """

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
        set_(self, "augmentation", AugmentConfig.from_dict(self.augmentation))
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
    def from_dict(cls, params: dict[str, Any]) -> AdapterConfig:
        """From parameters (YAML); unknown keys are an error so a typo cannot go unnoticed."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"Unknown adapter config keys {unknown}; expected some of {sorted(known)}"
            )
        if "adapter_id" not in params:
            raise ValueError("adapter config needs an adapter_id")
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists, not tuples) that `from_dict` turns back into an equal config."""
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


# ------------------------------------------------------------------------------------------ zoo
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
                json.dumps(value.to_dict(), sort_keys=True).encode()
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
        probe = AdapterConfig.from_dict({**params, "adapter_id": "tmp"})
        params["adapter_id"] = default_adapter_id(probe, extra)
    return AdapterConfig.from_dict(params)


def expand_zoo(zoo_params: dict[str, Any]) -> list[AdapterConfig]:
    """Zoo parameters -> configs: explicit `members` then the cartesian `grid`, over `defaults`.

    members: list of dicts, each overriding defaults (adapter_id optional, generated otherwise).
    grid: field -> list of values; every combination over the defaults gets a generated id.
    Duplicate adapter ids are an error (set explicit ids to disambiguate).
    """
    if not isinstance(zoo_params, dict):
        raise TypeError(f"zoo parameters must be a dict, got {type(zoo_params).__name__}")
    unknown = sorted(set(zoo_params) - {"defaults", "members", "grid"})
    if unknown:
        raise ValueError(f"Unknown zoo keys {unknown}; expected defaults, members, grid")
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


# ------------------------------------------------------------------------------ target modules
def _encoder_layer_lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and (name == "encoder.layer" or name.endswith(".encoder.layer"))
    ]


def resolve_target_modules(model: nn.Module, roles: Iterable[str]) -> list[str]:
    """Full module names (relative to `model`) of every encoder block's linear per role.

    Works for both transformers naming schemes through `classifier.role_module`.
    """
    roles = tuple(roles) if not isinstance(roles, str) else _parse_roles(roles)
    if not roles:
        raise ValueError("No target roles given")
    unknown = sorted(set(roles) - set(ROLE_SUFFIXES))
    if unknown:
        raise ValueError(f"Unknown target roles {unknown}; expected some of {list(ROLE_SUFFIXES)}")
    layer_lists = _encoder_layer_lists(model)
    if not layer_lists:
        raise ValueError(
            f"No `encoder.layer` block list in {type(model).__name__}; is this a DINOv2 model?"
        )
    names: list[str] = []
    for prefix, layers in layer_lists:
        for idx, layer in enumerate(layers):
            for role in roles:
                try:
                    module = role_module(layer, role)
                except KeyError as exc:
                    raise ValueError(
                        f"Role {role!r} has no linear layer in block {prefix}.{idx} "
                        f"(looked for {ROLE_SUFFIXES[role]})"
                    ) from exc
                local = next(n for n, m in layer.named_modules() if m is module)
                names.append(f"{prefix}.{idx}.{local}")
    if not names:
        raise ValueError(f"No target modules for roles {list(roles)} in {type(model).__name__}")
    return names


def _role_of_suffix(suffix: str) -> str | None:
    for role, suffixes in ROLE_SUFFIXES.items():
        if suffix in suffixes:
            return role
    return None


# ------------------------------------------------------------------------------------ attaching
def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoraLayer) for m in model.modules())


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed torch (CPU and CUDA) inside the block and restore the caller's RNG state after."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def lora_config_for(cfg: AdapterConfig, target_modules: list[str]) -> LoraConfig:
    return LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        use_dora=cfg.use_dora,
        use_rslora=cfg.use_rslora,
        target_modules=list(target_modules),
        bias="none",
    )


def attach_adapter(classifier: ViTClassifier, cfg: AdapterConfig) -> ViTClassifier:
    """Freeze the backbone, re-initialise the head and inject LoRA/DoRA (rank > 0), seeded.

    LoRA layers are injected in place (`inject_adapter_in_model`), so `classifier.backbone`
    stays the DINOv2 model the rest of the code expects; the head stays trainable and outside
    PEFT. Head and LoRA initialisation are drawn from `cfg.seed`, so training is reproducible.
    """
    if has_lora(classifier.backbone) or hasattr(classifier.backbone, "peft_config"):
        raise ValueError("The backbone already carries an adapter; attach to a fresh copy")
    classifier.backbone.requires_grad_(False)
    with seeded_rng(cfg.seed):
        classifier.head.reset_parameters()
        if cfg.rank > 0:
            targets = resolve_target_modules(classifier.backbone, cfg.target_roles)
            inject_adapter_in_model(
                lora_config_for(cfg, targets), classifier.backbone, ADAPTER_NAME
            )
    classifier.head.requires_grad_(True)
    trainable, total = count_trainable(classifier)
    logger.info(
        "Adapter %s: %d trainable of %d parameters (%.2f%%)",
        cfg.adapter_id,
        trainable,
        total,
        100.0 * trainable / total,
    )
    return classifier


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(parameters with requires_grad, all parameters), shared tensors counted once."""
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


# -------------------------------------------------------------------------------------- storage
def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _publish(tmp: Path, final: Path, attempts: int) -> None:
    """Rename `tmp` to `final`; an existing `final` is moved aside first, then deleted.

    Retried a few times because a concurrent writer (speculative Spark task) may publish the
    same directory in between; if the swap fails, the previous version is put back.
    """
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            os.replace(tmp, final)  # atomic; succeeds when `final` is absent (or empty)
            return
        except OSError:
            if last or not final.exists():
                raise
        backup = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(final, backup)
        except FileNotFoundError:  # a concurrent writer moved it: try again
            continue
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.exists():
                os.replace(backup, final)  # put the previous version back
            shutil.rmtree(backup, ignore_errors=True)
            if last:
                raise
            continue
        shutil.rmtree(backup, ignore_errors=True)
        return


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, attempts: int = 3) -> Iterator[Path]:
    """Yield a sibling temp directory to write into; publish it at `final` only on success.

    A crash or exception leaves `final` untouched (a previous complete version survives); a
    hard kill can only leave a hidden `.<name>.tmp-*` sibling, never a half `final`.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; readers on a cluster need access
        _publish(tmp, final, attempts)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=True))


def _write_peft_config(lora_cfg: LoraConfig, directory: Path) -> None:
    """What `LoraConfig.save_pretrained` writes, but with sets sorted: identical bytes per run."""
    payload = {
        key: sorted(value) if isinstance(value, set) else value
        for key, value in lora_cfg.to_dict().items()
    }
    (directory / ADAPTER_CONFIG).write_text(
        json.dumps(payload, indent=2, sort_keys=True, default=str)
    )


def save_adapter(
    classifier: ViTClassifier,
    cfg: AdapterConfig,
    directory: str | os.PathLike,
    extra_metadata: dict[str, Any],
) -> Path:
    """Write one adapter atomically: PEFT files (rank > 0), head, metadata, COMPLETE last.

    `extra_metadata` must hold "config_hash" (see `config_hash`); metrics etc. go in too.
    The PEFT files use `PeftModel.save_pretrained` key names, so `PeftModel.from_pretrained`
    can load them onto the same backbone.
    """
    if "config_hash" not in extra_metadata:
        raise ValueError("extra_metadata must contain 'config_hash' (used by is_complete)")
    if cfg.rank > 0 and not has_lora(classifier.backbone):
        raise ValueError(f"Adapter {cfg.adapter_id} has rank {cfg.rank} but no LoRA layers")
    if cfg.rank == 0 and has_lora(classifier.backbone):
        raise ValueError(f"Adapter {cfg.adapter_id} is a linear probe but the model has LoRA")
    import peft
    import transformers

    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        if cfg.rank > 0:
            state = get_peft_model_state_dict(classifier.backbone, adapter_name=ADAPTER_NAME)
            tensors = {PEFT_PREFIX + k: v.detach().cpu().contiguous() for k, v in state.items()}
            save_file(tensors, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
            _write_peft_config(classifier.backbone.peft_config[ADAPTER_NAME], tmp)
        head = {k: v.detach().cpu().contiguous() for k, v in classifier.head.state_dict().items()}
        save_file(head, str(tmp / HEAD_WEIGHTS), metadata={"format": "pt"})
        meta = {
            "format_version": ADAPTER_FORMAT_VERSION,
            "adapter_id": cfg.adapter_id,
            "config": cfg.to_dict(),
            "num_classes": int(classifier.head.out_features),
            "hidden_size": int(classifier.head.in_features // 2),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
            },
            "saved_at_unix": time.time(),
            **extra_metadata,
        }
        _write_json(tmp / META_FILE, meta)
        files = {
            path.name: {"bytes": path.stat().st_size, "sha256": _sha256_file(path)}
            for path in sorted(tmp.iterdir())
        }
        _write_json(
            tmp / COMPLETE_MARKER,
            {"config_hash": extra_metadata["config_hash"], "files": files},
        )
    logger.info("Saved adapter %s to %s", cfg.adapter_id, directory)
    return directory


def is_complete(
    directory: str | os.PathLike, expected_hash: str | None, verify_checksums: bool = True
) -> bool:
    """True when `directory` holds a finished adapter with this config hash (None: any hash)."""
    directory = Path(directory)
    marker = directory / COMPLETE_MARKER
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if expected_hash is not None and record.get("config_hash") != expected_hash:
        return False
    for name, info in record.get("files", {}).items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != info.get("bytes"):
            return False
        if verify_checksums and _sha256_file(path) != info.get("sha256"):
            return False
    return META_FILE in record.get("files", {}) and HEAD_WEIGHTS in record.get("files", {})


def read_adapter_files(directory: str | os.PathLike) -> dict[str, bytes]:
    """All files of a complete adapter as raw bytes (small; made for a Spark broadcast)."""
    directory = Path(directory)
    if not is_complete(directory, None):
        raise FileNotFoundError(f"{directory} is not a complete adapter (no valid COMPLETE marker)")
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def _verify_files(files: dict[str, bytes]) -> None:
    """When the COMPLETE record travels along, check every file against its checksum."""
    if COMPLETE_MARKER not in files:
        return
    record = json.loads(files[COMPLETE_MARKER].decode("utf-8"))
    for name, info in record.get("files", {}).items():
        if name not in files:
            raise ValueError(f"Adapter files lack {name} listed in {COMPLETE_MARKER}")
        if _sha256_bytes(files[name]) != info.get("sha256"):
            raise ValueError(f"Adapter file {name} does not match its checksum (corrupted copy)")


def read_adapter_meta(files: dict[str, bytes]) -> dict[str, Any]:
    if META_FILE not in files:
        raise ValueError(f"Adapter files lack {META_FILE}: {sorted(files)}")
    return json.loads(files[META_FILE].decode("utf-8"))


# ------------------------------------------------------------------------------------ inference
def adapted_modules(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Full names of the modules that carry LoRA weights, read from the weight keys.

    The weights, not `target_modules` of the stored config, say what was adapted: PEFT rewrites
    a list of 20 or more module names into bare suffixes ("fc1", "q_proj") before saving, which
    no longer name a module (and cannot be mapped onto the other transformers naming).
    """
    names = set()
    for key in state:
        parts = key.removeprefix(PEFT_PREFIX).split(".")
        cut = next((i for i, part in enumerate(parts) if part.startswith("lora_")), None)
        if cut:
            names.add(".".join(parts[:cut]))
    if not names:
        raise ValueError(f"Adapter weights hold no LoRA tensors: {sorted(state)[:4]}")
    return sorted(names)


def _translate_targets(model: nn.Module, saved: list[str]) -> dict[str, str]:
    """Map stored target module names onto this model's names (other naming scheme)."""
    present = dict(model.named_modules())
    mapping: dict[str, str] = {}
    for name in saved:
        if name in present:
            mapping[name] = name
            continue
        match = _LAYER_PATTERN.match(name)
        role = _role_of_suffix(match.group("suffix")) if match else None
        if match is None or role is None:
            raise ValueError(f"Adapter target {name!r} does not exist in this backbone")
        idx = int(match.group("idx"))
        candidates = [
            n
            for n in resolve_target_modules(model, [role])
            if _LAYER_PATTERN.match(n) and int(_LAYER_PATTERN.match(n).group("idx")) == idx
        ]
        if len(candidates) != 1:
            raise ValueError(f"Cannot map adapter target {name!r} onto this backbone")
        mapping[name] = candidates[0]
    return mapping


def _translate_state(
    state: dict[str, torch.Tensor], mapping: dict[str, str]
) -> dict[str, torch.Tensor]:
    by_length = sorted(mapping, key=len, reverse=True)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        bare = key.removeprefix(PEFT_PREFIX)
        source = next((s for s in by_length if bare.startswith(s + ".")), None)
        if source is None:
            raise ValueError(f"Adapter weight {key!r} belongs to no target module")
        out[mapping[source] + bare[len(source) :]] = value
    return out


def _load_lora(
    model: nn.Module, files: dict[str, bytes], merge: bool, device: torch.device
) -> nn.Module:
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if name not in files:
            raise ValueError(f"LoRA adapter files lack {name}: {sorted(files)}")
    raw = json.loads(files[ADAPTER_CONFIG].decode("utf-8"))
    lora_cfg = LoraConfig.from_peft_type(**LoraConfig.check_kwargs(**raw))
    if not isinstance(lora_cfg, LoraConfig):
        raise ValueError(f"Expected a LoRA adapter config, got {type(lora_cfg).__name__}")
    state = load_safetensors_bytes(files[ADAPTER_WEIGHTS])
    mapping = _translate_targets(model, adapted_modules(state))
    lora_cfg.target_modules = sorted(set(mapping.values()))
    lora_cfg.inference_mode = True
    state = {k: v.to(device) for k, v in _translate_state(state, mapping).items()}
    # The tuner is what `inject_adapter_in_model` builds internally; keeping it gives merge.
    tuner = LoraModel(model, lora_cfg, ADAPTER_NAME, low_cpu_mem_usage=True)
    result = set_peft_model_state_dict(tuner.model, state, ADAPTER_NAME, low_cpu_mem_usage=True)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"Adapter weights do not fit the backbone: missing {missing[:4]}, "
            f"unexpected {list(result.unexpected_keys)[:4]}"
        )
    return tuner.merge_and_unload() if merge else tuner.model


def build_inference_model(
    backbone: nn.Module, files: dict[str, bytes], num_classes: int, merge: bool = True
) -> ViTClassifier:
    """Adapter bytes + a pristine backbone -> an eval-mode classifier (the backbone is copied).

    With `merge=True` LoRA/DoRA deltas are folded into the base weights, so inference runs
    plain Linear layers at backbone speed. Only safetensors and JSON are read.
    """
    if has_lora(backbone) or hasattr(backbone, "peft_config"):
        raise ValueError("build_inference_model needs the pristine backbone, not an adapted one")
    _verify_files(files)
    meta = read_adapter_meta(files)
    if int(meta["num_classes"]) != int(num_classes):
        raise ValueError(
            f"Adapter {meta.get('adapter_id')} has {meta['num_classes']} classes, expected {num_classes}"
        )
    device = next(backbone.parameters()).device
    model = copy.deepcopy(backbone)
    model.requires_grad_(False)
    if int(meta["config"]["rank"]) > 0:
        model = _load_lora(model, files, merge, device)
    classifier = ViTClassifier(model, num_classes).to(device)
    if HEAD_WEIGHTS not in files:
        raise ValueError(f"Adapter files lack {HEAD_WEIGHTS}: {sorted(files)}")
    head = load_safetensors_bytes(files[HEAD_WEIGHTS])
    expected = {k: tuple(v.shape) for k, v in classifier.head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in head.items()}
    if found != expected:
        raise ValueError(f"Head weights {found} do not fit this backbone's head {expected}")
    classifier.head.load_state_dict(head)
    classifier.requires_grad_(False)
    return classifier.eval()
