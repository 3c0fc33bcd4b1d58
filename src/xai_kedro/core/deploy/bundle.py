"""The deployed model's directory: everything needed to score an image, nothing pickled.

Layout (written atomically, read by `read_bundle`):

    bundle.json      what the files are: adapter id, class names, the preprocessing (decode
                     settings, the adapter's evaluation crop, the XAI engine settings at the
                     backbone's input size), the backbone's location, why this adapter and
                     this predictor were chosen
    backbone/        config.json + *.safetensors (a copy, when the backbone is small), or
                     bundle.json names a declared directory (a large backbone is not copied)
    adapter/         the adapter's safetensors + JSON files, as the zoo stored them
    predictor.json   the failure predictor (`core.deploy.predictor`)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xai_kedro.core.common.atomic import atomic_directory
from xai_kedro.core.data.decoding import DecodeSettings
from xai_kedro.core.deploy.predictor import FailurePredictor
from xai_kedro.core.xai.settings import XAIConfig

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"
BACKBONE_DIR = "backbone"
ADAPTER_DIR = "adapter"
PREDICTOR_FILE = "predictor.json"


def backbone_files(directory: str | os.PathLike) -> list[Path]:
    """The files that make a backbone: config.json, the safetensors weights and, when present,
    preprocessor_config.json (its normalisation travels with it: families.pixel_stats)."""
    directory = Path(directory)
    files = [directory / "config.json", *sorted(directory.glob("*.safetensors"))]
    missing = [str(f) for f in files if not f.is_file()]
    if missing or len(files) < 2:
        raise FileNotFoundError(f"{directory} is not a backbone (config.json + *.safetensors)")
    preprocessor = directory / "preprocessor_config.json"
    return files + [preprocessor] if preprocessor.is_file() else files


def backbone_megabytes(directory: str | os.PathLike) -> float:
    """Size of the backbone's files in MB (decides copy vs declared path)."""
    return sum(f.stat().st_size for f in backbone_files(directory)) / 1e6


@dataclass(frozen=True)
class BundleSpec:
    """What `write_bundle` writes: the parts of the deployed model and what describes them."""

    adapter_id: str
    adapter_files: Mapping[str, bytes]
    backbone_dir: Path
    copy_backbone: bool
    class_names: tuple[str, ...]
    decode: DecodeSettings
    xai: XAIConfig
    eval_crop: int | None
    predictor: bytes
    description: Mapping[str, Any] = field(default_factory=dict)


def write_bundle(directory: str | os.PathLike, spec: BundleSpec) -> Path:
    """Write the bundle atomically (a previous one is replaced only once this one is complete)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    backbone_dir = Path(spec.backbone_dir).resolve()
    with atomic_directory(directory) as tmp:
        if spec.copy_backbone:
            (tmp / BACKBONE_DIR).mkdir()
            for file in backbone_files(backbone_dir):
                shutil.copyfile(file, tmp / BACKBONE_DIR / file.name)
            backbone = {"copied": True, "dir": BACKBONE_DIR}
        else:
            backbone_files(backbone_dir)  # the declared directory must be a backbone now
            # Absolute on purpose: MLflow copies the bundle into its artifact store and serving
            # downloads it to a fresh folder, so a path relative to the bundle (or to the
            # project) would point nowhere; a large backbone stays on storage every server sees.
            backbone = {"copied": False, "dir": str(backbone_dir)}
        (tmp / ADAPTER_DIR).mkdir()
        for name, data in sorted(spec.adapter_files.items()):
            (tmp / ADAPTER_DIR / name).write_bytes(data)
        (tmp / PREDICTOR_FILE).write_bytes(spec.predictor)
        meta = {
            "format_version": BUNDLE_FORMAT,
            "adapter_id": spec.adapter_id,
            "class_names": list(spec.class_names),
            "decode": spec.decode.as_dict(),
            "eval_crop": spec.eval_crop,
            "xai": {**asdict(spec.xai), "explainer_settings": dict(spec.xai.explainer_settings)},
            "backbone": backbone,
            **dict(spec.description),
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return directory


@dataclass(frozen=True)
class Bundle:
    """A bundle read back: its description and its parts, ready to build the model from."""

    directory: Path
    meta: dict[str, Any]
    adapter_files: dict[str, bytes]
    predictor: FailurePredictor

    @property
    def adapter_id(self) -> str:
        return str(self.meta["adapter_id"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.meta["class_names"])

    @property
    def decode(self) -> DecodeSettings:
        return DecodeSettings.from_params(self.meta["decode"], path="bundle.decode")

    @property
    def xai(self) -> XAIConfig:
        return XAIConfig.from_params(self.meta["xai"], path="bundle.xai")

    @property
    def eval_crop(self) -> int | None:
        crop = self.meta.get("eval_crop")
        return None if crop is None else int(crop)

    @property
    def backbone_dir(self) -> Path:
        backbone = self.meta["backbone"]
        path = Path(backbone["dir"])
        return self.directory / path if backbone.get("copied") else path


def read_bundle(directory: str | os.PathLike) -> Bundle:
    """A bundle written by `write_bundle` (JSON and safetensors only)."""
    directory = Path(directory)
    meta_path = directory / BUNDLE_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory} is not a deployed-model bundle (no {BUNDLE_FILE})")
    meta = json.loads(meta_path.read_text())
    if meta.get("format_version") != BUNDLE_FORMAT:
        raise ValueError(f"{meta_path}: unknown bundle format {meta.get('format_version')}")
    adapter = directory / ADAPTER_DIR
    files = {p.name: p.read_bytes() for p in sorted(adapter.iterdir()) if p.is_file()}
    predictor = FailurePredictor.from_bytes((directory / PREDICTOR_FILE).read_bytes())
    return Bundle(directory, meta, files, predictor)
