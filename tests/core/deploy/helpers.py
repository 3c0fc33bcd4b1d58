"""A tiny deployed-model bundle (2-layer backbone, a LoRA adapter, a logistic failure predictor)
and image files, shared by the deploy tests."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tests.core.adapters.helpers import NUM_CLASSES, lora_cfg, tiny_backbone, trained_like
from xai_kedro.core.adapters import attach_adapter, read_adapter_files, save_adapter
from xai_kedro.core.data.decoding import DecodeSettings
from xai_kedro.core.deploy.bundle import BundleSpec, write_bundle
from xai_kedro.core.deploy.predictor import export_predictor
from xai_kedro.core.meta.prediction.features import CONFIDENCE_FEATURES, XAI_FEATURES
from xai_kedro.core.meta.prediction.learners import make_model
from xai_kedro.core.models.backbone import save_backbone
from xai_kedro.core.models.classifier import ViTClassifier
from xai_kedro.core.xai.settings import XAIConfig

CLASS_NAMES = ("circle", "square", "triangle")
FEATURES = (*XAI_FEATURES, *CONFIDENCE_FEATURES)


def png_bytes(seed: int = 0, size: int = 40) -> bytes:
    """A random RGB PNG (larger than the storage size: decoding resizes it)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def fitted_predictor(kind: str = "logistic_regression", n: int = 200, seed: int = 0):
    """A scaler + estimator pipeline fitted on random features of the deployed names."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    hp = {"estimator": kind}
    if kind != "logistic_regression":
        hp["n_estimators"] = 7
    return make_model("m", hp, seed=seed).fit(X, y), X


def tiny_bundle(root: Path, copy_backbone: bool = True) -> Path:
    """A complete bundle under `root`/bundle (its backbone saved under `root`/backbone)."""
    backbone = tiny_backbone()
    backbone_dir = save_backbone(backbone, root / "backbone")
    cfg = lora_cfg(adapter_id="r4", rank=4)
    classifier = trained_like(
        attach_adapter(ViTClassifier(copy.deepcopy(backbone), NUM_CLASSES), cfg)
    )
    save_adapter(classifier, cfg, root / "adapter", {"config_hash": "h"})
    pipeline, _ = fitted_predictor()
    spec = BundleSpec(
        adapter_id="r4",
        adapter_files=read_adapter_files(root / "adapter"),
        backbone_dir=backbone_dir,
        copy_backbone=copy_backbone,
        class_names=CLASS_NAMES,
        decode=DecodeSettings(storage_size=32, min_side=16),
        xai=XAIConfig(steps=2, input_size=32, batch_size=8),
        eval_crop=None,
        predictor=export_predictor(pipeline, "logistic_regression", FEATURES, {"model": "m"}),
        description={"selection": {"method": "clean_accuracy"}},
    )
    return write_bundle(root / "bundle", spec)


def request_frame(*images: bytes) -> pd.DataFrame:
    import base64

    return pd.DataFrame({"image": [base64.b64encode(b).decode("ascii") for b in images]})
