"""ViT backbones: load (hub id or local dir, offline-first), build/pre-train small ones, store.

Any architecture of the `core.models.families.BACKBONES` registry loads (DINOv2, ViT, DeiT,
CLIP and SigLIP vision towers, ...); another model type fails naming the registered families.

Loading never trusts remote code and reads safetensors only. Offline is the default: when the
weights are not on this machine, `BackboneUnavailableError` says exactly how to provide them.
The `base` environment has no downloadable weights at all: it pre-trains a small ViT of the
DINOv2 architecture on an unbiased split (`core.models.pretrain`) and stores it like a hub model
(`save_backbone`), so every later stage loads it through the same `load_backbone`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

from xai_kedro.core.common.atomic import atomic_directory
from xai_kedro.core.common.errors import UserError
from xai_kedro.core.models.families import (
    BackboneFamily,
    family_for_model_type,
    preprocessing,
    set_pixel_stats,
)

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("dinov2", "dinov2_with_registers")  # the base env's own (pretrain)
# Config keys that describe the writer, not the model: excluded from the fingerprint.
VOLATILE_CONFIG_KEYS = ("transformers_version", "_name_or_path", "dtype", "torch_dtype")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_TRUTHY = {"1", "true", "yes", "on"}


class BackboneUnavailableError(UserError, RuntimeError):
    """The backbone weights are not on this machine (offline) or the local path is unusable."""


# ------------------------------------------------------------------------------------- loading
def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def hf_cache_dir(cache_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """The hub cache in use and where that comes from (argument, HF_HUB_CACHE, HF_HOME, default).

    Read at call time so an environment variable set after import is honoured.
    """
    if cache_dir:
        return str(cache_dir), "the cache_dir argument"
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"], "$HF_HUB_CACHE"
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub"), "$HF_HOME/hub"
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE), "the default (neither HF_HUB_CACHE nor HF_HOME is set)"


def _looks_like_path(source: str) -> bool:
    return (
        os.path.isabs(source)
        or source.startswith(("./", "../", "~", ".\\"))
        or "\\" in source
        or source.count("/") > 1
        or not _HUB_ID.match(source)
    )


def _check_model_type(model_type: str | None, source: str) -> BackboneFamily:
    """The registered family of `model_type`; a ValueError listing the families otherwise."""
    return family_for_model_type(model_type, source)


def _local_dir_problem(directory: Path) -> str | None:
    if not directory.exists():
        return f"the local backbone directory {str(directory)!r} does not exist"
    if not directory.is_dir():
        return f"the backbone path {str(directory)!r} is not a directory"
    if not (directory / "config.json").is_file():
        return f"the backbone directory {str(directory)!r} has no config.json"
    if not any(directory.glob("*.safetensors")):
        return (
            f"the backbone directory {str(directory)!r} has no *.safetensors weights "
            "(pickle .bin/.pt checkpoints are not loaded; convert them to safetensors)"
        )
    return None


def _unavailable_message(
    source: str,
    revision: str | None,
    cache_dir: str,
    cache_origin: str,
    offline: bool,
    exc: Exception,
) -> str:
    rev = f" --revision {revision}" if revision else ""
    mode = (
        "offline (local_files_only / HF_HUB_OFFLINE=1)"
        if offline
        else "online, but the download failed"
    )
    note = ""
    if "/" in source and not Path(source).exists():
        note = f"\n(If {source!r} was meant as a local directory: it does not exist.)"
    return (
        f"Backbone {source!r}{f' (revision {revision})' if revision else ''} is not available: "
        f"its config/safetensors weights are not in the Hugging Face cache at {cache_dir} "
        f"({cache_origin}); loading ran {mode}.{note}\n"
        "To provide the weights:\n"
        f"  1. On a machine with internet access run:  hf download {source}{rev}\n"
        f"     (older huggingface_hub:  huggingface-cli download {source}{rev})\n"
        f"  2. Copy that machine's hub cache (its $HF_HUB_CACHE, default ~/.cache/huggingface/hub) to "
        f"{cache_dir} here, or point HF_HUB_CACHE / HF_HOME at the copied cache;\n"
        f"     or download to a folder (hf download {source}{rev} --local-dir <dir>) and set "
        "`backbone.source` to that directory (config.json + model.safetensors).\n"
        "  HF_HUB_OFFLINE=1 is honoured: with it set nothing is fetched from the network.\n"
        f"Underlying error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    )


def load_backbone(
    source: str,
    *,
    local_files_only: bool = True,
    cache_dir: str | None = None,
    revision: str | None = None,
) -> nn.Module:
    """A registered family's model from a hub id or a local directory: fp32, eval, frozen.

    Keeps the default SDPA attention (never forced to eager). `HF_HUB_OFFLINE=1` forces offline
    loading even with `local_files_only=False`.
    """
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"backbone source must be a hub id or a directory, got {source!r}")
    source = source.strip()
    offline = local_files_only or _env_flag("HF_HUB_OFFLINE")
    local = Path(os.path.expanduser(source))
    is_local = local.is_dir() or _looks_like_path(source)

    if is_local:
        problem = _local_dir_problem(local)
        if problem:
            raise BackboneUnavailableError(
                f"Cannot load the backbone: {problem}. Point `backbone.source` at a directory "
                "written by save_backbone / save_pretrained (config.json + *.safetensors), or at a "
                "hub id such as facebook/dinov2-base."
            )
        raw = json.loads((local / "config.json").read_text())
        _check_model_type(raw.get("model_type"), source)
        location, load_kwargs = str(local), {}
    else:
        cache, origin = hf_cache_dir(cache_dir)
        location = source
        load_kwargs = {"cache_dir": cache, "revision": revision, "local_files_only": offline}

    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=False, **load_kwargs)
        family = _check_model_type(getattr(config, "model_type", None), source)
        loader: Any = AutoModel
        if config.model_type in family.full_model_types:  # image-text: its vision tower only
            import transformers

            loader, config = getattr(transformers, family.vision_class), config.vision_config
        model = loader.from_pretrained(
            location,
            config=config,
            trust_remote_code=False,
            use_safetensors=True,
            attn_implementation="sdpa",
            **load_kwargs,
        )
    except OSError as exc:
        if is_local:
            raise BackboneUnavailableError(
                f"Cannot load the backbone from {source!r}: {exc}"
            ) from exc
        raise BackboneUnavailableError(
            _unavailable_message(source, revision, cache, origin, offline, exc)
        ) from exc
    return freeze(_with_pixel_stats(model.float(), family, location, is_local, load_kwargs))


def _with_pixel_stats(
    model: nn.Module,
    family: BackboneFamily,
    location: str,
    is_local: bool,
    load_kwargs: dict[str, Any],
) -> nn.Module:
    """Store on the model the (mean, std) of its checkpoint's preprocessor_config.json, else its
    family's: every stage normalises with them (families.pixel_stats)."""
    stats = preprocessing(_checkpoint_dir(location, is_local, load_kwargs), family)
    return set_pixel_stats(model, stats["mean"], stats["std"])


def _checkpoint_dir(location: str, is_local: bool, load_kwargs: dict[str, Any]) -> Path | None:
    """The directory holding the checkpoint's `preprocessor_config.json` (for a hub id, its cache
    snapshot, fetched like the weights); None when it has none."""
    if is_local:
        return Path(location)
    from transformers.utils import cached_file

    try:
        found = cached_file(
            location,
            "preprocessor_config.json",
            **load_kwargs,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:
        return None
    return Path(found).parent if found else None


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients: the backbone is shared and never updated in place."""
    model.requires_grad_(False)
    return model.eval()


# ------------------------------------------------------------------------------------ building
def small_backbone_config(
    image_size: int = 64,
    patch_size: int = 8,
    hidden_size: int = 96,
    num_layers: int = 4,
    num_heads: int = 3,
    mlp_ratio: int = 4,
    num_register_tokens: int = 0,
    drop_path: float = 0.0,
) -> PretrainedConfig:
    """Config of a small ViT with the DINOv2 architecture (registers when > 0)."""
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
    if min(num_layers, num_heads, mlp_ratio) < 1 or num_register_tokens < 0:
        raise ValueError("num_layers, num_heads, mlp_ratio must be >= 1, registers >= 0")
    common: dict[str, Any] = {
        "image_size": image_size,
        "patch_size": patch_size,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "mlp_ratio": mlp_ratio,
        "drop_path_rate": drop_path,
    }
    if num_register_tokens > 0:
        from transformers import Dinov2WithRegistersConfig

        return Dinov2WithRegistersConfig(num_register_tokens=num_register_tokens, **common)
    from transformers import Dinov2Config

    return Dinov2Config(**common)


def build_backbone(config: PretrainedConfig) -> nn.Module:
    """A randomly initialised model of a registered family for `config` (SDPA attention)."""
    _check_model_type(getattr(config, "model_type", None), type(config).__name__)
    return AutoModel.from_config(config, attn_implementation="sdpa", trust_remote_code=False)


# ------------------------------------------------------------------------------------- storage
def save_backbone(backbone: nn.Module, directory: str | os.PathLike) -> Path:
    """Write config.json + model.safetensors atomically (temp sibling dir, then rename)."""
    directory = Path(directory)
    kwargs: dict[str, Any] = {}
    if "safe_serialization" in inspect.signature(backbone.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers < 5 (5.x always writes safetensors)
    with atomic_directory(directory) as tmp:
        backbone.save_pretrained(str(tmp), **kwargs)
        if not any(tmp.glob("*.safetensors")):
            raise RuntimeError(f"save_pretrained wrote no safetensors file into {tmp}")
    logger.info("Saved backbone to %s", directory)
    return directory


def _canonical_config(path: Path) -> bytes:
    config = json.loads(path.read_text())
    for key in VOLATILE_CONFIG_KEYS:
        config.pop(key, None)
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8")


def resolve_weights_dir(
    source: str | os.PathLike, *, cache_dir: str | None = None, revision: str | None = None
) -> Path:
    """The absolute directory that holds the backbone's config and weights (offline).

    A hub id resolves to its snapshot in the local Hugging Face cache, so Spark workers can load
    by path: they need the files on shared storage, not the driver's HF_* environment.
    """
    path = Path(os.path.expanduser(str(source)))
    if not path.is_dir() and not _looks_like_path(str(source)):
        from huggingface_hub import snapshot_download

        cache, origin = hf_cache_dir(cache_dir)
        try:
            path = Path(
                snapshot_download(
                    str(source), cache_dir=cache, revision=revision, local_files_only=True
                )
            )
        except Exception as exc:  # huggingface_hub raises several unrelated types here
            raise BackboneUnavailableError(
                _unavailable_message(str(source), revision, cache, origin, True, exc)
            ) from exc
    problem = _local_dir_problem(path)
    if problem:
        raise BackboneUnavailableError(f"Cannot use the backbone files: {problem}")
    return path.resolve()


def backbone_fingerprint(
    directory: str | os.PathLike, *, cache_dir: str | None = None, revision: str | None = None
) -> str:
    """sha256 over the weight files and the model-defining config: keys every cache on the backbone.

    `directory` may also be a hub id, resolved in the local cache (offline). Writer metadata
    (transformers version, dtype, name) is left out so re-saving the same weights keeps the key.
    """
    path = resolve_weights_dir(directory, cache_dir=cache_dir, revision=revision)
    digest = hashlib.sha256()
    digest.update(b"config\0" + _canonical_config(path / "config.json"))
    for weights in sorted(path.glob("*.safetensors")):
        digest.update(b"\0" + weights.name.encode() + b"\0")
        with open(weights, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ early check
class BackboneCheckError(UserError, ValueError):
    """An unusable `backbone` setting found on the driver before any image is read (one line)."""


def _checkpoint_config(source: str, local_files_only: bool) -> dict[str, Any] | None:
    """config.json of a local dir or a cached hub id; None for a hub id that may be downloaded."""
    local = Path(os.path.expanduser(source))
    if not (local.is_dir() or _looks_like_path(source)):
        if not (local_files_only or _env_flag("HF_HUB_OFFLINE")):
            return None  # downloaded in prepare_backbone
        try:
            local = resolve_weights_dir(source)
        except BackboneUnavailableError:
            cache = hf_cache_dir()[0]
            raise BackboneCheckError(
                f"backbone.source: {source!r} is not in the Hugging Face cache at {cache} "
                f"(offline): run `hf download {source}` on a machine with internet access or "
                "point backbone.source at a local checkpoint directory"
            ) from None
    problem = _local_dir_problem(local)
    if problem:
        raise BackboneCheckError(f"backbone.source: {problem}")
    try:
        return json.loads((local / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackboneCheckError(
            f"backbone.source: {str(local / 'config.json')!r} is not readable JSON ({exc})"
        ) from None


def check_backbone_setting(
    source: str, input_size: int | None, *, local_files_only: bool = True
) -> BackboneFamily | None:
    """Check the configured checkpoint from its files alone (no weights are loaded).

    Missing or unusable checkpoint, a model type no family accepts, an input size that is not a
    multiple of its patch size: `BackboneCheckError`, one line naming the setting. Returns the
    family (None for a hub id that will be downloaded later).
    """
    raw = _checkpoint_config(str(source).strip(), local_files_only)
    if raw is None:
        return None
    try:
        family = family_for_model_type(raw.get("model_type"), str(source))
    except ValueError as exc:
        raise BackboneCheckError(str(exc)) from None
    vision = raw.get("vision_config") or {}
    patch = raw.get("patch_size") or vision.get("patch_size")
    if input_size and patch and int(input_size) % int(patch):
        raise BackboneCheckError(
            f"backbone.input_size: {input_size} is not a multiple of the checkpoint's patch "
            f"size {patch} ({source!r})"
        )
    return family


# ------------------------------------------------------------------------- portable manifest
MANIFEST_PATH_KEYS = ("source", "weights_dir")
# The manifest keys stored relative to the project root (a hub id is never mistaken for a path).
RELATIVE_PATHS_KEY = "project_relative_paths"


def _project_root(root: str | os.PathLike | None) -> Path:
    return (Path(root) if root is not None else Path.cwd()).resolve()


def portable_manifest_paths(
    manifest: Mapping[str, Any], root: str | os.PathLike | None = None
) -> dict[str, Any]:
    """The backbone manifest with its absolute local paths under `root` (default: the project
    root, the cwd where kedro runs, where relative catalog paths resolve) made relative to it.

    A copied project then loads its own backbone, not the original's. Paths outside the root
    (the Hugging Face cache, shared storage) stay absolute; a hub id is left as it is.
    `RELATIVE_PATHS_KEY` lists the keys made relative."""
    base = _project_root(root)
    portable = dict(manifest)
    relative = []
    for key in MANIFEST_PATH_KEYS:
        value = portable.get(key)
        if value and Path(value).is_absolute() and Path(value).is_relative_to(base):
            portable[key] = Path(value).relative_to(base).as_posix()
            relative.append(key)
    portable[RELATIVE_PATHS_KEY] = relative
    return portable


def resolve_manifest_paths(
    manifest: Mapping[str, Any], root: str | os.PathLike | None = None
) -> dict[str, Any]:
    """The manifest with absolute paths again (relative ones joined to `root`, default the cwd).

    Call it on the driver before the manifest goes to Spark workers, which do not share the
    driver's working directory. A manifest already resolved (or stored before paths became
    portable) comes back unchanged, less `RELATIVE_PATHS_KEY`."""
    resolved = dict(manifest)
    keys = resolved.pop(RELATIVE_PATHS_KEY, None) or ()
    if keys:
        base = _project_root(root)
        for key in keys:
            resolved[key] = str(base / resolved[key])
    return resolved
