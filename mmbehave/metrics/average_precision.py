"""Average precision per class, one class against the rest (pure numpy, cheap enough for every epoch).

The definition is scikit-learn's ``average_precision_score``: the precision-recall curve is walked from the
highest score down, one point per distinct score (tied scores enter together), and

    AP = sum over those points of (recall gained at the point) * (precision at the point)

with no interpolation (a step function, not the trapezoid rule that overestimates AP).

One deliberate difference: a class with no positive sample has no recall, so its AP is undefined and comes
back NaN. scikit-learn returns 0 for it (with a warning) and averages that 0 into its macro AP, which would
punish a model for a class the split cannot measure; ``macro_average_precision`` leaves such classes out.
"""

from __future__ import annotations

import numpy as np


def binary_average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """AP of ``scores`` (N,) ranking the ``is_positive`` (N,) samples first; NaN when there is no positive."""
    is_positive = np.asarray(is_positive, dtype=bool)
    num_positive = int(is_positive.sum())
    if num_positive == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ranked_scores, ranked_positive = np.asarray(scores, dtype=float)[order], is_positive[order]
    # A threshold sits after the last sample of each run of equal scores: ties are one step on the curve.
    last_of_tie = np.r_[ranked_scores[1:] != ranked_scores[:-1], True]
    true_positives = np.cumsum(ranked_positive)[last_of_tie]
    selected = np.flatnonzero(last_of_tie) + 1
    precision = true_positives / selected
    recall_gained = np.diff(true_positives, prepend=0) / num_positive
    return float(np.sum(recall_gained * precision))


def per_class_average_precision(is_positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(C,) AP per column of ``is_positive`` / ``scores`` (N, C), each class against the rest; NaN for a class
    without positives. A single-label head passes its one-hot targets and softmax probabilities."""
    is_positive, scores = np.asarray(is_positive, dtype=bool), np.asarray(scores, dtype=float)
    return np.array([binary_average_precision(is_positive[:, c], scores[:, c]) for c in range(scores.shape[1])])


def macro_average_precision(per_class: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Mean AP over the classes (optionally only ``classes``, a bool mask) whose AP is defined; NaN if none is."""
    selected = np.asarray(per_class, dtype=float)
    if classes is not None:
        selected = selected[np.asarray(classes, dtype=bool)]
    defined = selected[~np.isnan(selected)]
    return float(defined.mean()) if defined.size else float("nan")
