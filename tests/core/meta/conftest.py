"""Synthetic Silver tables with a planted XAI -> robustness relationship, for the Gold tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast")
SEVERITIES = ("shallow", "medium", "heavy")
SEVERITY_VALUES = {
    "gaussian_noise": (15.0, 40.0, 80.0),
    "gaussian_blur": (1.0, 3.0, 6.0),
    "contrast": (0.7, 0.4, 0.15),
}


def make_silver(
    n_adapters: int = 4,
    n_images: int = 60,
    seed: int = 0,
    effect: float = 3.0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(silver_xai, silver_ood, adapter_zoo). OOD correctness is more likely when the clean
    attention entropy is low (strength ``effect``; 0 = no relationship); heavier severities and
    adapters with a higher mean entropy fail more. Confidence features carry no signal."""
    rng = np.random.default_rng(seed)
    images = [f"{i:016x}" for i in range(n_images)]
    adapters = [f"lora_r{4 * 2**a}" for a in range(n_adapters)]
    image_effect = rng.normal(0, 0.04, n_images)  # images share part of their entropy
    xai_rows, ood_rows = [], []
    for a, adapter in enumerate(adapters):
        shift = 0.03 * a  # higher-rank adapters attend more diffusely ...
        for i, image in enumerate(images):
            ent = float(np.clip(0.7 + shift + image_effect[i] + rng.normal(0, 0.04), 0, 1))
            conf = float(rng.uniform(0.5, 1.0))
            probs_top2 = float(rng.uniform(0.0, 1 - conf))
            label = int(rng.integers(0, 3))
            clean_ok = bool(rng.random() < 0.9)
            xai_rows.append(
                {
                    "image_id": image,
                    "adapter_id": adapter,
                    "label": label,
                    "target_class": label if clean_ok else (label + 1) % 3,  # = pred
                    "pred": label if clean_ok else (label + 1) % 3,
                    "confidence": conf,
                    "margin": conf - probs_top2,
                    "pred_entropy": float(rng.uniform(0.1, 1.0)),
                    "energy": float(-np.log(3) - rng.uniform(0.0, 2.0)),
                    "is_correct": clean_ok,
                    "attn_entropy": ent,
                    "gini": float(1 - ent + rng.normal(0, 0.05)),
                    "deletion_auc": float(rng.uniform(0.2, 0.6)),
                    "insertion_auc": float(rng.uniform(0.6, 0.95)),
                    "object_attention_share": float(rng.uniform(0, 1)),
                }
            )
            z = (ent - 0.745) / 0.06  # ... and so fail more under corruption
            for corruption in CORRUPTIONS:
                for s, severity in enumerate(SEVERITIES):
                    p = 1 / (1 + np.exp(-(1.5 - 0.8 * s - effect * z)))
                    ok = bool(rng.random() < p)
                    ood_rows.append(
                        {
                            "image_id": image,
                            "adapter_id": adapter,
                            "corruption": corruption,
                            "severity": severity,
                            "severity_value": SEVERITY_VALUES[corruption][s],
                            "label": label,
                            "pred": label if ok else (label + 1) % 3,
                            "confidence": float(
                                np.clip(conf - 0.1 * s + rng.normal(0, 0.05), 0, 1)
                            ),
                            "margin": float(rng.uniform(0, 0.5)),
                            "pred_entropy": float(rng.uniform(0.1, 1.5)),
                            "energy": float(-np.log(3) - rng.uniform(0.0, 2.0)),
                            "is_correct": ok,
                        }
                    )
    zoo = pd.DataFrame(
        {
            "adapter_id": adapters,
            "rank": [4 * 2**a for a in range(n_adapters)],
            "alpha": [8.0 * 2**a for a in range(n_adapters)],
            "use_dora": True,
            "use_rslora": True,
        }
    )
    return pd.DataFrame(xai_rows), pd.DataFrame(ood_rows), zoo


# Small, fast settings; the defaults (the reference experiment) are checked in test_comparison.py.
FAST_MODELS = {
    "RandomForest": {"n_estimators": 25, "max_depth": 6},
    "XGBoost": {"n_estimators": 25},
    "XGBoost_Tuned": {"n_estimators": 25},
    "LogisticRegression": {},
}
FAST_META_PARAMS = {"models": FAST_MODELS, "n_bootstrap": 100, "permutation_repeats": 3}


# The Gold tables of `make_silver()` built once per test run (a build costs ~20 s of CPU); the
# Gold, report and order-independence tests read the same tables.
GOLD_META_PARAMS = {
    "models": {
        "RandomForest": {"n_estimators": 20, "max_depth": 6},
        "XGBoost": {"n_estimators": 20},
        "XGBoost_Tuned": {"n_estimators": 20},
    },
    "n_bootstrap": 100,
    "permutation_repeats": 2,
}
GOLD_ESTIMATION_PARAMS = {"regressor": {"n_estimators": 20}}
GOLD_SEED = 1


@pytest.fixture(scope="session")
def gold_tables(silver) -> dict[str, pd.DataFrame]:
    from xai_kedro.core.meta.adapters.settings import EstimationSettings
    from xai_kedro.core.meta.gold import build_gold_tables
    from xai_kedro.core.meta.prediction.settings import MetaLearnerSettings

    xai, ood, zoo = silver
    meta = MetaLearnerSettings.from_params(GOLD_META_PARAMS)
    estimation = EstimationSettings.from_params(GOLD_ESTIMATION_PARAMS)
    return build_gold_tables(xai, ood, zoo, meta, estimation, seed=GOLD_SEED)


@pytest.fixture(scope="session")
def silver_factory() -> Callable[..., tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    return make_silver


@pytest.fixture(scope="session")
def silver() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return make_silver()


@pytest.fixture
def fast_meta() -> MetaLearnerSettings:
    return MetaLearnerSettings.from_params(FAST_META_PARAMS)
