"""Classification metrics from a confusion matrix (no scikit-learn dependency in the training path)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts; rows are true classes, columns predicted."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets, predictions), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined, as scikit-learn's zero_division=0)."""
    return scores_from_counts(np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1))


def scores_from_counts(true_positive: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support from per-class counts (or single totals, for micro averages): the one
    formula single-label heads (counts from a confusion matrix) and multi-label heads (counts per column) share.
    0 where undefined, as scikit-learn's zero_division=0."""
    true_positive, predicted, support = (np.asarray(a, dtype=float) for a in (true_positive, predicted, support))
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def accuracy_and_macro_f1(matrix: np.ndarray) -> tuple[float, float]:
    """Accuracy, and F1 averaged over the classes that occur in the targets or the predictions, as scikit-learn
    does: a class predicted but absent from the targets counts (with F1 0) — leaving it out would reward the
    false alarms; a class neither true nor predicted says nothing and is left out."""
    total = matrix.sum()
    accuracy = float(np.trace(matrix) / total) if total else 0.0
    scores = per_class_scores(matrix)
    occurs = (scores["support"] > 0) | (matrix.sum(axis=0) > 0)
    macro_f1 = float(scores["f1"][occurs].mean()) if occurs.any() else 0.0
    return accuracy, macro_f1
