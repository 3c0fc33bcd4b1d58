"""Adapters on disk: safetensors + JSON in one atomically published directory (nothing unpickled).

A COMPLETE marker, written last, records every file's size and checksum, so a killed Spark
task never leaves a directory that looks finished.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from xai_kedro.core.adapters.attach import ADAPTER_NAME, has_lora
from xai_kedro.core.adapters.config import ADAPTER_FORMAT_VERSION, AdapterConfig
from xai_kedro.core.common.atomic import atomic_directory
from xai_kedro.core.common.hashing import sha256_bytes, sha256_file
from xai_kedro.core.models.classifier import ViTClassifier

logger = logging.getLogger(__name__)


ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
HEAD_WEIGHTS = "head.safetensors"
META_FILE = "adapter_meta.json"
COMPLETE_MARKER = "COMPLETE"
PEFT_PREFIX = "base_model.model."  # key prefix of PeftModel.save_pretrained files


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
    class_names: list[str] | None = None,
) -> Path:
    """Write one adapter atomically: PEFT files (rank > 0), head, metadata, COMPLETE last.

    `extra_metadata` must hold "config_hash" (see `config_hash`); metrics etc. go in too.
    `class_names` (label index -> name, from Bronze's label_name) are stored so that scoring a
    new image can name its class rather than print an integer.
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
            "hidden_size": int(classifier.backbone.config.hidden_size),
            "backbone_family": classifier.family.name,
            **({"class_names": [str(c) for c in class_names]} if class_names else {}),
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
            path.name: {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
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
        if verify_checksums and sha256_file(path) != info.get("sha256"):
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
        if sha256_bytes(files[name]) != info.get("sha256"):
            raise ValueError(f"Adapter file {name} does not match its checksum (corrupted copy)")


def read_adapter_meta(files: dict[str, bytes]) -> dict[str, Any]:
    if META_FILE not in files:
        raise ValueError(f"Adapter files lack {META_FILE}: {sorted(files)}")
    return json.loads(files[META_FILE].decode("utf-8"))
