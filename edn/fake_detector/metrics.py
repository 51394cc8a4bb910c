"""Binary classification measures of detector scores: accuracy, average precision, ROC.

``scores``: float [N] in [0, 1], the probability of "generated";
``is_generated``: bool [N], the truth. Ties between scores are one threshold,
so the results do not depend on the order of the samples.
"""

from __future__ import annotations

import numpy as np

#: A pair with score >= this is called generated.
DECISION_THRESHOLD = 0.5


def _check(scores: np.ndarray, is_generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(is_generated, dtype=bool)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} must be two equal 1-D arrays")
    return scores, truth


def accuracy(scores: np.ndarray, is_generated: np.ndarray, threshold: float = DECISION_THRESHOLD) -> float:
    """Share of samples called right at ``threshold``."""
    scores, truth = _check(scores, is_generated)
    return float(np.mean((scores >= threshold) == truth)) if len(scores) else float("nan")


def _counts_by_threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct score, from the highest down: the score, and the true and false
    positives when every sample with at least that score is called generated."""
    order = np.argsort(-scores, kind="stable")
    scores, truth = scores[order], truth[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(truth)[last_of_each]
    false_positives = (last_of_each + 1) - true_positives
    return scores[last_of_each], true_positives, false_positives


def average_precision(scores: np.ndarray, is_generated: np.ndarray) -> float:
    """AP = sum over thresholds of (R_n - R_{n-1}) P_n: precision weighted by the recall
    each threshold adds (the step-wise area under the precision-recall curve, no
    interpolation). NaN without any generated sample."""
    scores, truth = _check(scores, is_generated)
    positives = truth.sum()
    if positives == 0:
        return float("nan")
    _, tp, fp = _counts_by_threshold(scores, truth)
    precision, recall = tp / (tp + fp), tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_curve(scores: np.ndarray, is_generated: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1),
    and the thresholds (inf first)."""
    scores, truth = _check(scores, is_generated)
    positives, negatives = truth.sum(), (~truth).sum()
    if positives == 0 or negatives == 0:
        raise ValueError("a ROC curve needs real and generated samples")
    thresholds, tp, fp = _counts_by_threshold(scores, truth)
    return np.r_[0.0, fp / negatives], np.r_[0.0, tp / positives], np.r_[np.inf, thresholds]


def roc_auc(scores: np.ndarray, is_generated: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids: a tie counts half), NaN when one class is missing."""
    scores, truth = _check(scores, is_generated)
    if truth.all() or not truth.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(scores, truth)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
