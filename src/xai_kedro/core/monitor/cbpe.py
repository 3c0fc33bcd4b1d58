"""The CBPE-style anchor: confidence calibrated on the clean validation split, averaged over a batch.

NannyML's confidence-based performance estimation (CBPE) calibrates the model's scores on a
labelled reference period and estimates accuracy on an unlabeled period as the mean calibrated
probability of being correct. Here the reference is the deployed adapter's clean validation split
(`silver_source` rows with `corruption == clean`), the calibration is isotonic regression of
correctness on max-softmax confidence, and the estimate is its mean over the batch. It assumes the
calibration holds under the shift (no concept shift), which is what the monitor measures it on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

CBPE = "cbpe"
CBPE_LABEL = "CBPE-style (isotonic)"
CBPE_REFERENCE = "NannyML CBPE"


class IsotonicCalibration:
    """P(correct | confidence), fitted by isotonic regression on labelled source predictions."""

    def __init__(self, confidence: Any, correct: Any) -> None:
        c = np.asarray(confidence, dtype=np.float64)
        y = np.asarray(correct, dtype=np.float64)
        if c.ndim != 1 or c.shape != y.shape or c.size < 2 or not np.isfinite(c).all():
            raise ValueError(
                f"need >= 2 finite confidences and as many 0/1 outcomes, got {c.shape}"
            )
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("correct must hold 0/1 values")
        self._iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(c, y)

    def prob_correct(self, confidence: Any) -> np.ndarray:
        """Calibrated P(correct) per image (confidences outside the source range are clipped)."""
        return self._iso.predict(np.asarray(confidence, dtype=np.float64))

    def estimate(self, confidence: Any) -> float:
        """The batch's estimated accuracy: mean calibrated P(correct)."""
        c = np.asarray(confidence, dtype=np.float64)
        if c.size == 0:
            raise ValueError("an empty batch has no estimated accuracy")
        return float(self.prob_correct(c).mean())
