"""A batch through the deployed model: per-image prediction, confidence, XAI profile, failure
risk and logits (the estimators' input), and frozen-backbone embeddings (the drift test's input).

The per-image row is the scoring answer (`core.deploy.scoring.DeployedModel.score_pixels`) with
the rest of the `silver_xai` profile kept; the embeddings are computed as Bronze's are
(`core.models.embeddings.embed_images` on the stored-size pixels at the backbone's input size),
so the batch is compared with `bronze_embeddings` in the same space.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from torch import nn

from xai_kedro.core.data.bronze import centre_crop_arrays
from xai_kedro.core.deploy.scoring import DeployedModel
from xai_kedro.core.meta.adapters.estimators import PredictionSet
from xai_kedro.core.models.backbone import load_backbone
from xai_kedro.core.models.embeddings import embed_images
from xai_kedro.core.models.inference import predict_logits
from xai_kedro.core.xai.engine import compute_xai

DROPPED = ("label", "is_correct", "heatmap", "target_class")  # no labels on a monitored batch


def frozen_backbone(deployed: DeployedModel) -> nn.Module:
    """The bundle's pristine backbone (the deployed classifier holds a merged copy)."""
    backbone = load_backbone(str(deployed.bundle.backbone_dir), local_files_only=True)
    return backbone.to(deployed.device).eval()


def profile_pixels(deployed: DeployedModel, images: np.ndarray) -> pd.DataFrame:
    """Stored-size uint8 images [B, S, S, 3] -> one row per image: class_name, the `silver_xai`
    prediction and XAI columns (no label ones), failure_risk and logits."""
    bundle = deployed.bundle
    cropped = centre_crop_arrays(np.asarray(images, dtype=np.uint8), bundle.eval_crop)
    config = replace(deployed.xai, keep_heatmap=False)
    labels = np.zeros(len(cropped), dtype=np.int64)  # curves follow the prediction
    profile = compute_xai(deployed.model, cropped, labels, None, config, deployed.device)
    logits = predict_logits(
        deployed.model, cropped, input_size=config.input_size, device=deployed.device
    )
    profile = profile.drop(columns=[c for c in DROPPED if c in profile.columns])
    profile.insert(0, "class_name", [bundle.class_names[i] for i in profile["pred"]])
    profile["failure_risk"] = deployed.predictor.frame_risk(profile)
    profile["logits"] = list(logits.numpy().astype(np.float64))
    return profile


def embed_pixels(deployed: DeployedModel, backbone: nn.Module, images: np.ndarray) -> np.ndarray:
    """Bronze-space CLS embeddings [B, D] of stored-size uint8 images."""
    return embed_images(
        backbone,
        np.asarray(images, dtype=np.uint8),
        input_size=int(deployed.xai.input_size or backbone.config.image_size),
        device=deployed.device,
    )


def target_set(profile: pd.DataFrame) -> PredictionSet:
    """The batch as the estimators' unlabelled target (rows in the profile's order)."""
    return PredictionSet.from_rows(profile, labelled=False)
