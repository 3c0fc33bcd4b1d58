"""Score images with a bundle: class name, confidence and failure risk, as the pipeline would.

The features of the failure predictor are the XAI profile of the image under the deployed
adapter, so an image goes through exactly the pipeline's path: `core.data.decoding` to the
storage size (the Bronze pixels), the adapter's evaluation crop, then `core.xai.engine.
compute_xai` with the run's engine settings at the backbone's input size (the `silver_xai`
row); the predictor reads its feature columns from that row.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.adapters import build_inference_model
from xai_kedro.core.common.device import pick_device
from xai_kedro.core.data.bronze import centre_crop_arrays
from xai_kedro.core.data.decoding import ImageRejected, decode_image
from xai_kedro.core.deploy.bundle import Bundle, read_bundle
from xai_kedro.core.models.backbone import load_backbone
from xai_kedro.core.xai.engine import compute_xai

logger = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("class_name", "class_id", "confidence", "failure_risk", "error")
HEATMAP_COLUMN = "heatmap"
INPUT_COLUMNS = ("image", "path")


class DeployedModel:
    """The bundle's classifier (backbone + merged adapter) and failure predictor, loaded once."""

    def __init__(self, bundle: Bundle, device: str | None = "auto") -> None:
        self.bundle = bundle
        self.device = pick_device(device)
        backbone = load_backbone(str(bundle.backbone_dir), local_files_only=True)
        num_classes = len(bundle.class_names)
        model = build_inference_model(backbone.to(self.device), bundle.adapter_files, num_classes)
        self.model = model.to(self.device).eval()
        self.decode_settings = bundle.decode
        self.xai = bundle.xai
        self.predictor = bundle.predictor
        logger.info(
            "Deployed model loaded: adapter %s, %d classes, predictor %s on %d features, %s",
            bundle.adapter_id,
            num_classes,
            self.predictor.kind,
            len(self.predictor.features),
            self.device,
        )

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | None = "auto") -> DeployedModel:
        return cls(read_bundle(directory), device)

    def decode(self, data: bytes) -> np.ndarray:
        """Any image file's bytes -> the stored pixels (or `ImageRejected`)."""
        s = self.decode_settings
        return decode_image(data, s.storage_size, s.min_side, s.max_pixels).pixels

    def score_pixels(self, images: np.ndarray, heatmap: bool = False) -> pd.DataFrame:
        """Stored-size uint8 images [B, S, S, 3] -> one row of `OUTPUT_COLUMNS` per image
        (plus `heatmap`, a flat list per image, when asked)."""
        images = centre_crop_arrays(np.asarray(images, dtype=np.uint8), self.bundle.eval_crop)
        config = replace(self.xai, keep_heatmap=heatmap)
        labels = np.zeros(len(images), dtype=np.int64)  # curves follow the prediction
        profile = compute_xai(self.model, images, labels, None, config, self.device)
        class_id = profile["pred"].to_numpy(dtype=np.int64)
        out = pd.DataFrame(
            {
                "class_name": [self.bundle.class_names[i] for i in class_id],
                "class_id": class_id,
                "confidence": profile["confidence"].to_numpy(dtype=np.float64),
                "failure_risk": self.predictor.frame_risk(profile),
                "error": pd.Series([None] * len(class_id), dtype=object),
            }
        )
        if heatmap:
            out[HEATMAP_COLUMN] = [
                np.asarray(h, dtype=np.float64).tolist() for h in profile["heatmap"]
            ]
        return out

    def predict_frame(self, frame: pd.DataFrame, heatmap: bool = False) -> pd.DataFrame:
        """The served answer: one row per input row (`image`: base64 bytes of an image file, or
        `path`: a file on the server). A row that cannot be read or decoded gets its `error`
        and no prediction; the others are scored in one batch."""
        present = [c for c in INPUT_COLUMNS if c in frame.columns]
        if not present:
            columns = list(frame.columns)
            raise ValueError(f"the input needs an `image` (base64) or `path` column: {columns}")
        pixels: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for row in frame.itertuples(index=False):
            values = row._asdict()
            try:
                pixels.append(self.decode(_input_bytes(values.get("image"), values.get("path"))))
                errors.append(None)
            except (ImageRejected, ValueError, OSError) as error:
                pixels.append(None)
                errors.append(f"{type(error).__name__}: {error}")
        good = [i for i, p in enumerate(pixels) if p is not None]
        out = _empty_answer(len(frame), heatmap)
        if good:
            scored = self.score_pixels(np.stack([pixels[i] for i in good]), heatmap)
            for column in scored.columns:
                values = out[column].astype(object)
                values.iloc[good] = scored[column].to_list()
                out[column] = values
        out["error"] = errors
        return _typed(out)


def _input_bytes(image: Any, path: Any) -> bytes:
    """The file bytes of one input row: base64 `image`, else the file at `path`."""
    if isinstance(image, str) and image:
        try:
            return base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"`image` is not valid base64: {error}") from None
    if isinstance(image, bytes | bytearray) and image:
        return bytes(image)
    if isinstance(path, str) and path:
        return Path(path).expanduser().read_bytes()
    raise ValueError("the row has neither an `image` (base64) nor a `path`")


def _empty_answer(n: int, heatmap: bool) -> pd.DataFrame:
    columns = [*OUTPUT_COLUMNS, *([HEATMAP_COLUMN] if heatmap else [])]
    return pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in columns})


def _typed(out: pd.DataFrame) -> pd.DataFrame:
    """Scores as float64 (NaN where a row failed); class ids as int64, or Python ints and None
    when a row failed (JSON has no integer NaN)."""
    if out["class_id"].notna().all():
        out["class_id"] = out["class_id"].astype(np.int64)
    else:
        out["class_id"] = [None if pd.isna(v) else int(v) for v in out["class_id"]]
    for column in ("confidence", "failure_risk"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(np.float64)
    return out
