"""The label-free estimators applied per (adapter, corruption, severity): each adapter's own
source predictions (clean validation split, and source-side shifts for the calibrated ones)
against its unlabelled shifted predictions; agreement-on-the-line across the zoo's adapters."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from xai_kedro.core.meta.adapters.estimators import (
    ESTIMATORS,
    Estimator,
    PredictionSet,
    aline_predict,
    pairwise_agreement,
)
from xai_kedro.core.meta.prediction.features import require_columns

logger = logging.getLogger(__name__)


def _stack_sets(df: pd.DataFrame, by: list[str], labelled: bool) -> dict[tuple, PredictionSet]:
    ordered = df.sort_values([*by, "image_id"], kind="stable")
    return {
        (k if isinstance(k, tuple) else (k,)): PredictionSet.from_rows(g, labelled)
        for k, g in ordered.groupby(by, sort=True)
    }


def _aligned_preds(sets: Mapping[str, PredictionSet], adapters: Sequence[str]) -> np.ndarray:
    """[M, n] predictions of ``adapters`` on the images that every one of them has."""
    frames = [pd.Series(sets[a].pred, index=sets[a].image_ids, name=a) for a in adapters]
    table = pd.concat(frames, axis=1, join="inner").sort_index()
    if table.empty:
        raise ValueError("agreement-on-the-line: the adapters share no images")
    return table.to_numpy().T


class _Sets:
    """Each adapter's prediction sets: targets per condition, its labelled clean source, its
    labelled source-side shifts, and which of them a calibrated estimator may use."""

    def __init__(
        self,
        silver_ood: pd.DataFrame,
        source: pd.DataFrame,
        calibration: pd.DataFrame | None,
        exclude_target_corruption: bool,
    ) -> None:
        self.has_logits = "logits" in silver_ood.columns and "logits" in source.columns
        by = ["adapter_id", "corruption", "severity"]
        self.targets = _stack_sets(silver_ood, by, labelled=False)
        self.sources = {k[0]: v for k, v in _stack_sets(source, ["adapter_id"], True).items()}
        self.shifted: dict[str, list[tuple[str, PredictionSet]]] = {a: [] for a in self.sources}
        if calibration is not None and not calibration.empty:
            if "logits" not in calibration.columns:
                self.has_logits = False
            for (a, corruption, _), s in _stack_sets(calibration, by, labelled=True).items():
                self.shifted.setdefault(a, []).append((str(corruption), s))
        self.exclude_target_corruption = exclude_target_corruption
        self.conditions = sorted({k[1:] for k in self.targets})

    def calibration_sets(self, adapter: str, corruption: str) -> list[PredictionSet]:
        """The clean source first, then the source shifts (of other corruptions only when
        ``exclude_target_corruption``)."""
        sets = self.shifted.get(adapter, [])
        if self.exclude_target_corruption:
            sets = [(c, s) for c, s in sets if c != str(corruption)]
        return [self.sources[adapter], *(s for _, s in sets)]

    def fewest_calibration_sets(self) -> int:
        counts = (
            len(self.calibration_sets(a, c)) for a in self.sources for c, _ in self.conditions
        )
        return min(counts, default=0)


def _runnable(names: Sequence[str], sets: _Sets) -> list[Estimator]:
    """The named estimators whose inputs exist; the others are skipped with a warning."""
    fewest = sets.fewest_calibration_sets()
    chosen = []
    for name in names:
        est = ESTIMATORS.get(name)
        if est.needs_logits and not sets.has_logits:
            logger.warning("estimator %s skipped: silver tables have no logits column", name)
        elif est.needs_calibration and fewest < 2:
            logger.warning(
                "estimator %s skipped: too few source-side shifted sets to calibrate on "
                "(ood.source_shifts; other corruptions than the target's when "
                "accuracy_estimation.exclude_target_corruption)",
                name,
            )
        else:
            chosen.append(est)
    return chosen


def _per_adapter_rows(sets: _Sets, estimators: Sequence[Estimator]) -> list[tuple]:
    """Each per-adapter estimator on each (adapter, condition) with a source."""
    missing = sorted({k[0] for k in sets.targets} - set(sets.sources))
    if missing:
        logger.warning("adapters %s have OOD rows but no source rows; no estimates", missing)
    rows = []
    for (adapter, corruption, severity), tgt in sets.targets.items():
        if adapter not in sets.sources:
            continue
        for est in estimators:
            cal = sets.calibration_sets(adapter, corruption)
            pred = est.fn(sets.sources[adapter], tgt, cal)
            rows.append((adapter, est.name, corruption, severity, float(pred)))
    return rows


def _zoo_rows(
    sets: _Sets, estimators: Sequence[Estimator], aline_clip: float, min_adapters: int
) -> list[tuple]:
    """Agreement-on-the-line over the adapters that have both source and target rows."""
    adapters = sorted(set(sets.sources) & {k[0] for k in sets.targets})
    if estimators and len(adapters) < max(3, min_adapters):
        logger.warning("agreement-on-the-line skipped: %d adapters < 3", len(adapters))
        return []
    if not estimators:
        return []
    sources = sets.sources
    src_preds = _aligned_preds(sources, adapters)
    labels = pd.Series(sources[adapters[0]].labels, index=sources[adapters[0]].image_ids)
    common = sorted(set.intersection(*(set(sources[a].image_ids) for a in adapters)))
    src_acc = (src_preds == labels.loc[common].to_numpy()).mean(axis=1)
    agr_id = pairwise_agreement(src_preds)
    rows = []
    for corruption, severity in sets.conditions:
        cond = {a: sets.targets[(a, corruption, severity)] for a in adapters}
        agr_ood = pairwise_agreement(_aligned_preds(cond, adapters))
        for est in estimators:
            variant = est.name.removeprefix("aline_")
            pred = aline_predict(agr_id, agr_ood, src_acc, variant, aline_clip)
            rows += [
                (a, est.name, corruption, severity, float(v))
                for a, v in zip(adapters, pred, strict=True)
            ]
    return rows


def label_free_predictions(
    silver_ood: pd.DataFrame,
    source: pd.DataFrame,
    calibration: pd.DataFrame | None,
    estimators: Sequence[str],
    aline_clip: float = 1e-3,
    min_adapters: int = 3,
    exclude_target_corruption: bool = True,
) -> pd.DataFrame:
    """Predicted accuracy per (adapter, method, corruption, severity).

    ``source``: labelled clean rows per adapter (the validation split); ``calibration``:
    labelled source rows under synthetic shifts (corruption/severity columns), the clean source
    is always the first calibration set. With ``exclude_target_corruption`` a target corruption
    is calibrated only on source shifts of *other* corruptions, so the line never saw the shift
    type it is applied to. Estimators whose inputs are missing (no logits, fewer than two
    calibration sets, too few adapters) are skipped with a warning.
    """
    need = ["adapter_id", "image_id", "pred", "confidence", "pred_entropy"]
    require_columns(silver_ood, [*need, "corruption", "severity"], "silver_ood")
    require_columns(source, [*need, "label"], "source predictions")
    sets = _Sets(silver_ood, source, calibration, exclude_target_corruption)
    chosen = _runnable(estimators, sets)
    rows = _per_adapter_rows(sets, [e for e in chosen if not e.zoo])
    rows += _zoo_rows(sets, [e for e in chosen if e.zoo], aline_clip, min_adapters)
    return pd.DataFrame(
        rows, columns=["adapter_id", "method", "corruption", "severity", "predicted_accuracy"]
    )
