"""Label-free accuracy estimators: one registry, name -> function, each a few lines.

Every per-adapter estimator sees the adapter's labelled **source** predictions (clean validation
split), its unlabelled **target** predictions (one shifted test set) and, for the two estimators
that need a linear calibration, labelled **calibration** sets (the source split under synthetic
shifts, never the test images). Agreement-on-the-line works on the whole zoo at once: it needs
pairs of models predicting the same images.

- AC: average max-softmax confidence on the target (Hendrycks & Gimpel 2017's baseline score).
- DoC (Guillory et al. 2021): source accuracy minus the drop in average confidence.
- ATC-MC / ATC-NE (Garg et al. 2022): threshold on the source score at the source accuracy;
  the target accuracy is the fraction of target scores above it.
- COT (Lu et al. 2023): the error is the optimal-transport cost between the target softmax
  vectors and the source label distribution (one-hot atoms), cost ||p - e_y||_1 / 2 = 1 - p_y.
- Nuclear norm (Deng et al. 2023): ||P||_* / sqrt(N * min(N, K)) of the target softmax matrix,
  mapped to accuracy by a line fitted on the calibration sets.
- MaNo (Xie et al. 2024): the entry-wise L_p norm (p = 4) of the normalised logit matrix,
  scaled by (N K)^(-1/p); softmax normalisation when the dataset criterion (mean cross-entropy
  against the uniform distribution) exceeds a threshold, else the second-order Taylor softmax;
  mapped to accuracy by a line fitted on the calibration sets. ``mano`` follows the authors'
  code: the Taylor branch subtracts each row's minimum before normalising; ``mano_paper`` is
  the paper's equation (no subtraction). Both choose the branch on the clean source (the
  authors' code decides it on the test set's first batches), one norm over the whole set
  rather than a mean of per-batch norms.
- ALine-S / ALine-D (Baek et al. 2022, agreement-on-the-line): in probit space, the line of
  OOD vs ID agreement over model pairs has the slope and bias of OOD vs ID accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, sparse
from scipy import stats as sps
from scipy.special import log_softmax, softmax

from xai_kedro.core.common.registry import Registry
from xai_kedro.core.meta.stats.association import as_binary

logger = logging.getLogger(__name__)

MANO_NORM_ORDER = 4  # Xie et al. 2024: p = 4
MANO_CRITERION_THRESHOLD = 5.0  # Xie et al. 2024: eta = 5
MIN_CALIBRATION_SETS = 2  # a line needs two distinct points


@dataclass(frozen=True)
class PredictionSet:
    """Predictions of one adapter on one image set (rows aligned with ``image_ids``).

    ``logits`` [N, K] is needed by COT, nuclear norm and MaNo; ``labels`` only on labelled
    (source and calibration) sets.
    """

    confidence: np.ndarray
    entropy: np.ndarray
    pred: np.ndarray
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None
    image_ids: np.ndarray | None = None

    @property
    def probs(self) -> np.ndarray:
        if self.logits is None:
            raise ValueError("this estimator needs the logits column (full softmax vectors)")
        return softmax(self.logits, axis=1)

    @property
    def correct(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this estimator needs a labelled source set")
        return (self.pred == self.labels).astype(float)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, labelled: bool = True) -> PredictionSet:
        """From Silver rows (columns confidence, pred_entropy, pred, optional logits/label)."""
        if rows.empty:
            raise ValueError("a prediction set needs at least one row")
        logits = None
        if "logits" in rows.columns:
            logits = np.stack([np.asarray(v, dtype=float) for v in rows["logits"]])
        return cls(
            confidence=_finite(rows["confidence"], "confidence"),
            entropy=_finite(rows["pred_entropy"], "pred_entropy"),
            pred=rows["pred"].to_numpy(dtype=np.int64),
            logits=logits,
            labels=rows["label"].to_numpy(dtype=np.int64) if labelled else None,
            image_ids=rows["image_id"].to_numpy() if "image_id" in rows.columns else None,
        )


def _finite(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN/inf values")
    return arr


# ------------------------------------------------------------------ confidence-based
def average_confidence(target_confidence: Any) -> float:
    """AC: mean max-softmax probability on the target."""
    return float(_finite(target_confidence, "target_confidence").mean())


def atc_threshold(source_score: Any, source_correct: Any) -> float:
    """Threshold t with #(source scores > t) = #correct, i.e. fraction above t = accuracy.

    Any t in [s_(n-k), s_(n-k+1)) works for sorted scores s and k correct samples; we take the
    lower end, s_(n-k) (-inf when every sample is correct). Ties at the boundary make the
    equality unreachable; the fraction above t is then a little below the accuracy.
    """
    s = np.sort(_finite(source_score, "source_score"))
    correct = as_binary(source_correct, "source_correct")
    if correct.shape != s.shape or not np.isfinite(correct).all():
        raise ValueError("source_correct must be finite 0/1 values, one per source score")
    k = int(round(correct.sum()))
    n = s.size
    return float(s[n - k - 1]) if k < n else float("-inf")


def atc_predict(source_score: Any, source_correct: Any, target_score: Any) -> float:
    """ATC: fraction of target scores above the source threshold."""
    t = atc_threshold(source_score, source_correct)
    return float((_finite(target_score, "target_score") > t).mean())


def doc_predict(source_confidence: Any, source_correct: Any, target_confidence: Any) -> float:
    """DoC: source accuracy minus the drop in mean confidence from source to target."""
    src = _finite(source_confidence, "source_confidence")
    acc = as_binary(source_correct, "source_correct")
    if acc.shape != src.shape:
        raise ValueError("source_correct must have one value per source confidence")
    return float(acc.mean() - (src.mean() - average_confidence(target_confidence)))


# ------------------------------------------------------------------ optimal transport
def label_distribution(labels: Any, n_classes: int) -> np.ndarray:
    """Class frequencies of the source labels (length ``n_classes``)."""
    y = np.asarray(labels, dtype=np.int64)
    if y.size == 0 or y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must be non-empty and in [0, {n_classes}), got {np.unique(y)}")
    return np.bincount(y, minlength=n_classes) / y.size


def cot_error(target_probs: Any, source_label_dist: Any) -> float:
    """COT error: min over couplings of E[1 - p_y] between the target softmax vectors (uniform
    weights) and the one-hot source label distribution, solved as a transportation LP."""
    p = np.asarray(target_probs, dtype=float)
    q = np.asarray(source_label_dist, dtype=float)
    if p.ndim != 2 or p.shape[1] != q.size or not np.isclose(q.sum(), 1.0):
        raise ValueError(f"need probs [N, K] and a label distribution of K, got {p.shape}, {q}")
    n, k = p.shape
    cost = (1.0 - p).ravel()  # ||p_i - e_j||_1 / 2 = 1 - p_ij for a probability vector
    rows = sparse.kron(sparse.eye(n), np.ones((1, k)))  # each target sample sends mass 1/n
    cols = sparse.kron(np.ones((1, n)), sparse.eye(k))  # each class gets its source frequency
    res = optimize.linprog(
        cost,
        A_eq=sparse.vstack([rows, cols]).tocsr(),
        b_eq=np.concatenate([np.full(n, 1.0 / n), q]),
        bounds=(0, None),
        method="highs",
    )
    if not res.success:
        raise RuntimeError(f"COT transport problem failed: {res.message}")
    return float(res.fun)


# ------------------------------------------------------------------ matrix scores
def nuclear_norm_score(probs: Any) -> float:
    """Deng et al. 2023: nuclear norm of the prediction matrix over its upper bound."""
    p = np.asarray(probs, dtype=float)
    n, k = p.shape
    return float(np.linalg.svd(p, compute_uv=False).sum() / np.sqrt(n * min(n, k)))


def mano_criterion(logits: Any) -> float:
    """Mean cross-entropy between the uniform distribution and the softmax (MaNo's Phi)."""
    return float(-log_softmax(np.asarray(logits, dtype=float), axis=1).mean())


def taylor_softmax(logits: Any, subtract_min: bool = False) -> np.ndarray:
    """Second-order Taylor softmax (1 + q + q^2 / 2, always > 0) normalised per row (the paper's
    equation); ``subtract_min``: each row's minimum removed first (the authors' code)."""
    q = np.asarray(logits, dtype=float)
    v = 1.0 + q + q * q / 2.0
    if subtract_min:
        v = v - v.min(axis=1, keepdims=True)
        total = v.sum(axis=1, keepdims=True)  # 0 when every entry of a row is equal
        return np.divide(v, total, out=np.full_like(v, 1.0 / v.shape[1]), where=total > 0)
    return v / v.sum(axis=1, keepdims=True)


def mano_score(
    logits: Any,
    use_softmax: bool | None = None,
    order: int = MANO_NORM_ORDER,
    subtract_min: bool = True,
) -> float:
    """MaNo: (1 / (N K))^(1/p) ||sigma(Q)||_p. ``use_softmax=None`` applies the criterion;
    ``subtract_min=False`` is the paper's Taylor normalisation, True the authors' code's."""
    q = np.asarray(logits, dtype=float)
    if use_softmax is None:
        use_softmax = mano_criterion(q) > MANO_CRITERION_THRESHOLD
    p = softmax(q, axis=1) if use_softmax else taylor_softmax(q, subtract_min)
    return float((np.abs(p) ** order).mean() ** (1.0 / order))


def linear_calibration(scores: Sequence[float], accuracies: Sequence[float]) -> tuple[float, float]:
    """(slope, intercept) of accuracy on score by least squares over the calibration sets."""
    x, y = np.asarray(scores, dtype=float), np.asarray(accuracies, dtype=float)
    if x.size < MIN_CALIBRATION_SETS or np.ptp(x) == 0:
        raise ValueError(
            f"linear calibration needs >= {MIN_CALIBRATION_SETS} calibration sets with distinct "
            f"scores, got scores {x.tolist()}: configure source shifts (ood.source_shifts)"
        )
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def _calibrated(
    score_fn: Callable[[PredictionSet], float],
    target: PredictionSet,
    calibration: Sequence[PredictionSet],
) -> float:
    slope, intercept = linear_calibration(
        [score_fn(c) for c in calibration], [c.accuracy for c in calibration]
    )
    return slope * score_fn(target) + intercept


# ------------------------------------------------------------------ agreement on the line
def probit(values: Any, clip: float) -> np.ndarray:
    """Phi^-1 of rates clipped to [clip, 1 - clip] (rates of 0 or 1 have no probit)."""
    return sps.norm.ppf(np.clip(np.asarray(values, dtype=float), clip, 1.0 - clip))


def pairwise_agreement(preds: Any) -> np.ndarray:
    """Agreement rate of every model pair (i < j, row-major) on the same images; [M, n] in."""
    p = np.asarray(preds)
    if p.ndim != 2:
        raise ValueError(f"predictions must be [M models, n images], got shape {p.shape}")
    i, j = np.triu_indices(p.shape[0], k=1)
    return (p[i] == p[j]).mean(axis=1)


def aline_predict(
    agreement_id: Any,
    agreement_ood: Any,
    source_accuracy: Any,
    variant: str = "d",
    clip: float = 1e-3,
) -> np.ndarray:
    """Predicted target accuracy of each of M models from pairwise agreement (Baek et al. 2022).

    ``agreement_id`` / ``agreement_ood``: rates of every pair (i < j, row-major, see
    ``pairwise_agreement``); ``source_accuracy`` [M] labelled ID accuracies. The probit line of
    OOD vs ID agreement gives slope a and bias b. ALine-S (``variant="s"``) predicts
    Phi^-1(acc_OOD) = a Phi^-1(acc_ID) + b; ALine-D (``"d"``) solves, by least squares over the
    pairs, (z_i + z_j) / 2 = Phi^-1(agr_OOD_ij) + a [(Phi^-1(acc_i) + Phi^-1(acc_j)) / 2 -
    Phi^-1(agr_ID_ij)] for z = Phi^-1(acc_OOD).
    """
    acc = np.asarray(source_accuracy, dtype=float)
    m = acc.size
    if m < 3:
        raise ValueError(f"agreement-on-the-line needs >= 3 models (>= 3 pairs), got {m}")
    i, j = np.triu_indices(m, k=1)
    agr_id, agr_ood = probit(agreement_id, clip), probit(agreement_ood, clip)
    if agr_id.shape != i.shape or agr_ood.shape != i.shape:
        raise ValueError(f"need {i.size} pair agreements for {m} models, got {agr_id.shape}")
    if variant not in ("s", "d"):
        raise ValueError(f"variant must be 's' or 'd', got {variant!r}")
    if np.ptp(agr_id) == 0:
        raise ValueError("all ID agreement rates are equal: the agreement line is undefined")
    slope, bias = np.polyfit(agr_id, agr_ood, 1)
    z_id = probit(acc, clip)
    if variant == "s":
        return sps.norm.cdf(slope * z_id + bias)
    design = np.zeros((i.size, m))
    design[np.arange(i.size), i] = 0.5
    design[np.arange(i.size), j] = 0.5
    rhs = agr_ood + slope * ((z_id[i] + z_id[j]) / 2.0 - agr_id)
    z_ood, *_ = np.linalg.lstsq(design, rhs, rcond=None)
    return sps.norm.cdf(z_ood)


# ------------------------------------------------------------------ registry
AdapterEstimatorFn = Callable[[PredictionSet, PredictionSet, Sequence[PredictionSet]], float]


@dataclass(frozen=True)
class Estimator:
    """A label-free accuracy estimator: per adapter (``fn``) or over the zoo (``zoo=True``)."""

    name: str
    label: str
    reference: str
    fn: AdapterEstimatorFn | None = None
    needs_logits: bool = False
    needs_calibration: bool = False
    zoo: bool = False


def _mano(
    target: PredictionSet, calibration: Sequence[PredictionSet], subtract_min: bool = True
) -> float:
    # one normalisation for the calibration sets and the target, chosen on the clean source
    # (the first calibration set), never on the test set: the line is only meaningful if all
    # points use the same
    use_softmax = mano_criterion(calibration[0].logits) > MANO_CRITERION_THRESHOLD
    return _calibrated(
        lambda s: mano_score(s.logits, use_softmax, subtract_min=subtract_min), target, calibration
    )


ESTIMATORS: Registry[Estimator] = Registry(
    "label-free estimator", setting="meta_learning.accuracy_estimation.estimators"
)
for _estimator in (
    Estimator(
        "ac",
        "AC",
        "Hendrycks & Gimpel 2017",
        lambda src, tgt, cal: average_confidence(tgt.confidence),
    ),
    Estimator(
        "doc",
        "DoC",
        "Guillory et al. 2021",
        lambda src, tgt, cal: doc_predict(src.confidence, src.correct, tgt.confidence),
    ),
    Estimator(
        "atc_mc",
        "ATC-MC",
        "Garg et al. 2022",
        lambda src, tgt, cal: atc_predict(src.confidence, src.correct, tgt.confidence),
    ),
    Estimator(
        "atc_ne",
        "ATC-NE",
        "Garg et al. 2022",
        lambda src, tgt, cal: atc_predict(-src.entropy, src.correct, -tgt.entropy),
    ),
    Estimator(
        "cot",
        "COT",
        "Lu et al. 2023",
        lambda src, tgt, cal: (
            1.0 - cot_error(tgt.probs, label_distribution(src.labels, tgt.probs.shape[1]))
        ),
        needs_logits=True,
    ),
    Estimator(
        "nuclear_norm",
        "Nuclear norm",
        "Deng et al. 2023",
        lambda src, tgt, cal: _calibrated(lambda s: nuclear_norm_score(s.probs), tgt, cal),
        needs_logits=True,
        needs_calibration=True,
    ),
    Estimator(
        "mano",
        "MaNo",
        "Xie et al. 2024",
        lambda src, tgt, cal: _mano(tgt, cal),
        needs_logits=True,
        needs_calibration=True,
    ),
    Estimator(
        "mano_paper",
        "MaNo (paper eq.)",
        "Xie et al. 2024, eq. without the code's row-minimum shift",
        lambda src, tgt, cal: _mano(tgt, cal, subtract_min=False),
        needs_logits=True,
        needs_calibration=True,
    ),
    Estimator("aline_s", "ALine-S", "Baek et al. 2022", zoo=True),
    Estimator("aline_d", "ALine-D", "Baek et al. 2022", zoo=True),
):
    ESTIMATORS.register(_estimator.name, _estimator)
