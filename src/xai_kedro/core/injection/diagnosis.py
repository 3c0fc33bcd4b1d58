"""Failure diagnosis on the validation split: which samples fail, where their attention falls.

Why the validation split only: the refined adapters are measured on the test split, so anything
the diagnosis (and through it the generated training images) learns from must come from
elsewhere. Every function here checks the split of the rows it is given and refuses test rows.

A *failure* of an adapter is a validation sample it misclassifies, or one it classifies right
with a low-faithfulness explanation (deletion AUC at or above a quantile of that adapter's
validation rows: removing the most-attended patches hardly lowers the target probability, so
the attention does not show what the decision rests on). Each failure gets a *confuser*: the
class whose evidence the model may be borrowing, i.e. its wrong prediction, else the class whose
training background the sample sits on, else another class chosen by a stable hash.

The per-class *failure profile* says in plain language why a class fails: how often, confused
with what, whether the attention sits on the object or on the background (where object masks
exist), and which backgrounds dominate its failures (where the source describes them, e.g. the
synthetic source's textures, whose class tie in the training split is the background shortcut).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from xai_kedro.core.common.settings import Settings
from xai_kedro.core.data.synthetic import (
    SyntheticConfig,
    sample_spec,
    spurious_texture,
    texture_name,
)

#: The split refined adapters are measured on: never diagnosed, never a generator's input.
TEST_SPLIT = "test"
FAILURE_KINDS = ("misclassified", "low_faithfulness")
FAILURE_COLUMNS = [
    "adapter_id", "image_id", "label", "label_name", "pred", "confuser", "kind", "confidence",
    "object_attention_share", "deletion_auc", "insertion_auc", "background",
    "background_class", "heatmap",
]  # fmt: skip
PROFILE_COLUMNS = [
    "adapter_id", "label", "label_name", "n_images", "accuracy", "n_misclassified",
    "n_low_faithfulness", "confused_with", "n_confused_with", "object_share_failures",
    "object_share_correct", "dominant_background", "dominant_background_share",
    "on_confuser_background_share", "is_failing", "reason",
]  # fmt: skip
XAI_COLUMNS_NEEDED = (
    "image_id", "adapter_id", "label", "pred", "confidence", "is_correct",
    "object_attention_share", "deletion_auc", "insertion_auc",
)  # fmt: skip
_SYNTHETIC_NAME = re.compile(r"(?P<split>[a-z]+)_(?P<index>\d+)\.png$")


@dataclass(frozen=True)
class DiagnosisConfig(Settings):
    """Settings of the diagnosis (parameters `knowledge_injection.diagnosis`).

    split: the split diagnosed; anything but the test split.
    low_faithfulness_quantile: correct samples whose deletion AUC is at or above this quantile
        of the adapter's rows on the split also count as failures; 1.0 = misclassified only.
    background_share: object attention share below which attention is "mostly on the
        background" in the reasons.
    min_failures: a class needs at least this many failures to be profiled as failing.
    shortcut_share: share of a class's mistakes on the predicted class's training background
        from which the reason calls it a background shortcut.
    """

    PATH = "knowledge_injection.diagnosis"

    split: str = "val"
    low_faithfulness_quantile: float = 0.9
    background_share: float = 0.5
    min_failures: int = 1
    shortcut_share: float = 0.5

    def __post_init__(self) -> None:
        if self.split == TEST_SPLIT:
            raise ValueError(
                "knowledge_injection.diagnosis.split must not be 'test': the refined adapters "
                "are measured on the test split, so it must not shape their training data"
            )
        if not 0.0 < self.low_faithfulness_quantile <= 1.0:
            raise ValueError(
                "knowledge_injection.diagnosis.low_faithfulness_quantile must be in (0, 1], "
                f"got {self.low_faithfulness_quantile}"
            )
        if not 0.0 <= self.background_share <= 1.0:
            raise ValueError(
                "knowledge_injection.diagnosis.background_share must be in [0, 1], "
                f"got {self.background_share}"
            )
        if not 0.0 <= self.shortcut_share <= 1.0:
            raise ValueError(
                "knowledge_injection.diagnosis.shortcut_share must be in [0, 1], "
                f"got {self.shortcut_share}"
            )
        if int(self.min_failures) < 1:
            raise ValueError(
                f"knowledge_injection.diagnosis.min_failures must be >= 1, got {self.min_failures}"
            )


def check_split(images: pd.DataFrame, split: str) -> None:
    """Refuse rows of any other split (above all the test split) before anything reads them."""
    if "split" not in images:
        raise ValueError("diagnosis images need a 'split' column to prove where they come from")
    other = sorted(set(images["split"]) - {split})
    if other:
        raise ValueError(
            f"the diagnosis reads only the {split!r} split but was given rows of {other}; "
            "filter the images before diagnosing"
        )


def stable_int(text: str) -> int:
    """A 32-bit integer from a string, the same on every machine (seeds, tie-breaks)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def synthetic_backgrounds(
    source_paths: Sequence[str], config: SyntheticConfig, split: str
) -> pd.DataFrame:
    """Background texture of each synthetic image, regenerated from its (split, index).

    -> columns `background` (texture name, None when the path is not a synthetic image of
    `split`) and `background_class` (the class that texture is tied to in the training split,
    -1 when none).
    """
    names, classes = [], []
    tied = {spurious_texture(config, k): k for k in range(config.num_classes)}
    for path in source_paths:
        match = _SYNTHETIC_NAME.search(str(path))
        if match is None or match.group("split") != split:
            names.append(None)
            classes.append(-1)
            continue
        texture_id = sample_spec(config, split, int(match.group("index"))).texture_id
        names.append(texture_name(texture_id))
        classes.append(tied.get(texture_id, -1))
    return pd.DataFrame({"background": names, "background_class": classes})


def _confuser(row: Any, num_classes: int) -> int:
    if not row.is_correct:
        return int(row.pred)
    if row.background_class >= 0 and row.background_class != row.label:
        return int(row.background_class)
    offset = 1 + stable_int(str(row.image_id)) % (num_classes - 1)
    return int((row.label + offset) % num_classes)


def find_failures(
    xai_rows: pd.DataFrame,
    images: pd.DataFrame,
    class_names: Sequence[str],
    config: DiagnosisConfig,
) -> pd.DataFrame:
    """One row per (adapter, failing sample) of the diagnosed split (:data:`FAILURE_COLUMNS`).

    `xai_rows` are `silver_xai` rows of the split; `images` has image_id, label, split and
    optionally background / background_class (see :func:`synthetic_backgrounds`).
    """
    check_split(images, config.split)
    missing = sorted(set(XAI_COLUMNS_NEEDED) - set(xai_rows.columns))
    if missing:
        raise ValueError(f"diagnosis XAI rows lack columns {missing}")
    outside = sorted(set(xai_rows["image_id"]) - set(images["image_id"]))
    if outside:
        raise ValueError(
            f"{len(outside)} XAI rows are for images outside the {config.split!r} split "
            f"(e.g. {outside[:3]}): the diagnosis reads only that split"
        )
    num_classes = len(class_names)
    if num_classes < 2:
        raise ValueError("the diagnosis needs at least two classes")
    meta = images[["image_id"]].copy()
    for column, default in (("background", None), ("background_class", -1)):
        meta[column] = images.get(column, default)
    meta["background_class"] = meta["background_class"].fillna(-1).astype(int)
    keep = [*XAI_COLUMNS_NEEDED, *(["heatmap"] if "heatmap" in xai_rows else [])]
    rows = xai_rows[keep].merge(meta, on="image_id", how="left", validate="many_to_one")
    if "heatmap" not in rows:
        rows["heatmap"] = None
    frames = []
    for _, group in rows.groupby("adapter_id", sort=True):
        deletion = group["deletion_auc"].to_numpy(dtype=float)
        threshold = (
            np.inf
            if config.low_faithfulness_quantile >= 1.0
            else float(np.nanquantile(deletion, config.low_faithfulness_quantile))
        )
        wrong = ~group["is_correct"].astype(bool)
        unfaithful = ~wrong & (group["deletion_auc"] >= threshold)
        chosen = group[wrong | unfaithful].copy()
        chosen["kind"] = np.where(wrong[wrong | unfaithful], *FAILURE_KINDS)
        frames.append(chosen)
    failures = pd.concat(frames, ignore_index=True) if frames else rows.iloc[:0].copy()
    if failures.empty:
        failures["kind"] = pd.Series(dtype=str)
    failures["confuser"] = [_confuser(r, num_classes) for r in failures.itertuples(index=False)]
    failures["label_name"] = [class_names[int(k)] for k in failures["label"]]
    failures = failures.sort_values(["adapter_id", "image_id"], ignore_index=True)
    return failures[FAILURE_COLUMNS]


def _share_text(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.2f}"


def _reason(p: dict[str, Any], config: DiagnosisConfig) -> str:
    """The plain-language reason of one class's failure profile."""
    n_fail = p["n_misclassified"] + p["n_low_faithfulness"]
    if n_fail == 0:
        return f"no failures on the {config.split} split"
    parts = [f"{p['n_misclassified']}/{p['n_images']} misclassified"]
    if p["n_confused_with"]:
        parts[0] += f", mostly as {p['confused_with']} ({p['n_confused_with']})"
    if p["n_low_faithfulness"]:
        parts.append(f"{p['n_low_faithfulness']} right but with a low-faithfulness explanation")
    fail_share, right_share = p["object_share_failures"], p["object_share_correct"]
    if np.isfinite(fail_share):
        where = "the background" if fail_share < config.background_share else "the object"
        parts.append(
            f"attention mostly on {where} when failing (object share {_share_text(fail_share)}"
            f" vs {_share_text(right_share)} when right)"
        )
    on_confuser = p["on_confuser_background_share"]
    if np.isfinite(on_confuser) and p["n_misclassified"]:
        text = (
            f"{on_confuser:.0%} of its mistakes sit on the background the training split ties "
            "to the predicted class"
        )
        if on_confuser >= config.shortcut_share:
            text += ": a background shortcut"
        parts.append(text)
    if p["dominant_background"] is not None:
        parts.append(
            f"most failures on {p['dominant_background']} ({p['dominant_background_share']:.0%})"
        )
    return "; ".join(parts)


def failure_profiles(
    xai_rows: pd.DataFrame,
    images: pd.DataFrame,
    failures: pd.DataFrame,
    class_names: Sequence[str],
    config: DiagnosisConfig,
) -> pd.DataFrame:
    """Per (adapter, class): counts, confusions, object share and a reason (:data:`PROFILE_COLUMNS`)."""
    check_split(images, config.split)
    records = []
    has_backgrounds = "background" in images and images["background"].notna().any()
    for adapter_id, rows in xai_rows.groupby("adapter_id", sort=True):
        adapter_failures = failures[failures["adapter_id"] == adapter_id]
        for label, name in enumerate(class_names):
            own = rows[rows["label"] == label]
            fails = adapter_failures[adapter_failures["label"] == label]
            wrong = fails[fails["kind"] == "misclassified"]
            correct = own[own["is_correct"].astype(bool)]
            counts = wrong["pred"].value_counts()
            top = int(counts.index[0]) if len(counts) else None
            p: dict[str, Any] = {
                "adapter_id": adapter_id,
                "label": label,
                "label_name": name,
                "n_images": len(own),
                "accuracy": float(own["is_correct"].mean()) if len(own) else float("nan"),
                "n_misclassified": len(wrong),
                "n_low_faithfulness": int((fails["kind"] == "low_faithfulness").sum()),
                "confused_with": class_names[top] if top is not None else None,
                "n_confused_with": int(counts.iloc[0]) if len(counts) else 0,
                "object_share_failures": float(fails["object_attention_share"].mean())
                if len(fails)
                else float("nan"),
                "object_share_correct": float(correct["object_attention_share"].mean())
                if len(correct)
                else float("nan"),
                "dominant_background": None,
                "dominant_background_share": float("nan"),
                "on_confuser_background_share": float("nan"),
            }
            known = fails["background"].dropna() if has_backgrounds else pd.Series(dtype=str)
            if len(known):
                shares = known.value_counts(normalize=True)
                p["dominant_background"] = str(shares.index[0])
                p["dominant_background_share"] = float(shares.iloc[0])
                if len(wrong):
                    p["on_confuser_background_share"] = float(
                        (wrong["background_class"] == wrong["pred"]).mean()
                    )
            p["is_failing"] = len(fails) >= config.min_failures
            p["reason"] = _reason(p, config)
            records.append(p)
    return pd.DataFrame(records, columns=PROFILE_COLUMNS)
