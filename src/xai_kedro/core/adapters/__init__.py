"""The adapter zoo: configs, LoRA/DoRA attachment by role, atomic storage, inference loading.

An adapter is the PEFT LoRA (or DoRA) weights on a frozen DINOv2 backbone plus the linear head
of `ViTClassifier`; rank 0 is the linear-probe baseline (head only). Everything is stored as
safetensors + JSON (nothing is unpickled) in one directory per adapter that is published
atomically, so a killed Spark task never leaves a directory that looks complete.

Module names are never hard-coded: LoRA targets are named by role (query, value, fc1, ...) and
resolved against the loaded model, and `build_inference_model` re-resolves stored targets so an
adapter trained under one transformers naming scheme loads under the other.
"""

from xai_kedro.core.adapters.attach import attach_adapter, count_trainable, has_lora
from xai_kedro.core.adapters.config import AdapterConfig, config_hash
from xai_kedro.core.adapters.loading import adapted_modules, build_inference_model
from xai_kedro.core.adapters.storage import (
    is_complete,
    read_adapter_files,
    read_adapter_meta,
    save_adapter,
)
from xai_kedro.core.adapters.targets import resolve_target_modules
from xai_kedro.core.adapters.zoo import default_adapter_id, expand_zoo

__all__ = [
    "AdapterConfig",
    "adapted_modules",
    "attach_adapter",
    "build_inference_model",
    "config_hash",
    "count_trainable",
    "default_adapter_id",
    "expand_zoo",
    "has_lora",
    "is_complete",
    "read_adapter_files",
    "read_adapter_meta",
    "resolve_target_modules",
    "save_adapter",
]
