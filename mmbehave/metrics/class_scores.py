"""Long-tail scores of one classification head: per class, averaged, and split into frequent and rare classes.

    single-label head: targets (N,) class index, probs (N, C) softmax  ─┐
    multi-label head:  targets (N, C) 0/1,         probs (N, C) sigmoid  ─┴─► HeadScores(per_class, summary)

    per_class  precision, recall, f1, support, average_precision; with train counts also train_count, is_frequent
    summary    macro_ / micro_ precision, recall, f1; macro_ap; samples_f1 (multi-label);
               with train counts: frequent_ / rare_ macro_f1 and macro_ap

Pure numpy, so training validation (every epoch) and ``evaluate`` compute the same numbers, equal to
scikit-learn's on the same arrays (tests/test_class_metrics.py). The conventions, and why:

* every class of the class list gets a row, as scikit-learn's ``labels=range(C)`` with ``zero_division=0``:
  a class never predicted has precision 0, a class without support recall 0;
* macro precision / recall / F1 of a single-label head average the classes that occur in the targets or the
  predictions (scikit-learn's default labels, and what ``val/macro_f1`` always was): a class predicted but
  absent from the targets counts with F1 0, so false alarms are not free; a class neither true nor predicted
  says nothing and is left out. A multi-label head averages every column, as scikit-learn does for indicator
  matrices;
* micro scores pool the counts of all classes (for a single-label head all three equal the accuracy);
* AP is undefined for a class without positives: NaN in the table, left out of macro AP (average_precision.py);
* frequent classes are those whose training-split count is above the median count of the class list, rare
  classes the rest; a frequent/rare average over no class is NaN (e.g. every class equally frequent: none is
  frequent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmbehave.metrics.average_precision import (
    macro_average_precision,
    per_class_average_precision,
)
from mmbehave.metrics.confusion import confusion_matrix, scores_from_counts


@dataclass(frozen=True)
class HeadScores:
    per_class: dict[str, np.ndarray]   # {score name: (C,) values}, in class-list order
    summary: dict[str, float]          # {score name: value}


def frequent_classes(train_counts: np.ndarray) -> np.ndarray:
    """(C,) bool: the classes trained on more clips than the median class (the rest are the rare ones)."""
    counts = np.asarray(train_counts, dtype=float)
    return counts > np.median(counts)


def mean_over(values: np.ndarray, classes: np.ndarray, empty: float = float("nan")) -> float:
    """Mean of ``values`` over the ``classes`` mask; ``empty`` when the mask selects nothing."""
    return float(values[classes].mean()) if classes.any() else empty


def single_label_scores(targets: np.ndarray, probs: np.ndarray, train_counts: np.ndarray | None = None) -> HeadScores:
    """Scores of a softmax head; the prediction is the most probable class."""
    targets, probs = np.asarray(targets, dtype=np.int64), np.asarray(probs, dtype=float)
    num_classes = probs.shape[1]
    matrix = confusion_matrix(targets, probs.argmax(axis=1), num_classes)
    true_positive, predicted, support = np.diag(matrix), matrix.sum(axis=0), matrix.sum(axis=1)
    is_positive = np.eye(num_classes, dtype=bool)[targets]
    return head_scores(true_positive, predicted, support, is_positive, probs,
                       averaged=(support > 0) | (predicted > 0), train_counts=train_counts)


def multi_label_scores(targets: np.ndarray, probs: np.ndarray, threshold: float = 0.5,
                       train_counts: np.ndarray | None = None) -> HeadScores:
    """Scores of a sigmoid head: a class is predicted where its probability is at least ``threshold``. Adds
    ``samples_f1``, the F1 of each sample's predicted label set against its true one, averaged over samples
    (a sample with neither true nor predicted labels scores 0, scikit-learn's zero_division=0)."""
    is_positive, probs = np.asarray(targets).astype(bool), np.asarray(probs, dtype=float)
    is_predicted = probs >= threshold
    hits = is_positive & is_predicted
    scores = head_scores(hits.sum(axis=0), is_predicted.sum(axis=0), is_positive.sum(axis=0), is_positive, probs,
                         averaged=np.ones(probs.shape[1], dtype=bool), train_counts=train_counts)
    per_sample = scores_from_counts(hits.sum(axis=1), is_predicted.sum(axis=1), is_positive.sum(axis=1))
    scores.summary["samples_f1"] = float(per_sample["f1"].mean()) if len(probs) else 0.0
    return scores


def head_scores(true_positive: np.ndarray, predicted: np.ndarray, support: np.ndarray, is_positive: np.ndarray,
                probs: np.ndarray, *, averaged: np.ndarray, train_counts: np.ndarray | None) -> HeadScores:
    """The per-class table and its averages from per-class counts (``averaged``: the classes macro scores
    average) and the one-vs-rest targets and scores for AP."""
    per_class = scores_from_counts(true_positive, predicted, support)
    per_class["average_precision"] = per_class_average_precision(is_positive, probs)
    micro = scores_from_counts(np.sum(true_positive), np.sum(predicted), np.sum(support))
    summary = {f"macro_{name}": mean_over(per_class[name], averaged, empty=0.0) for name in ("precision", "recall", "f1")}
    summary.update({f"micro_{name}": float(micro[name]) for name in ("precision", "recall", "f1")})
    summary["macro_ap"] = macro_average_precision(per_class["average_precision"])
    if train_counts is not None:
        counts = np.asarray(train_counts, dtype=np.int64)
        if counts.shape != (len(support),):
            raise ValueError(f"train_counts has {counts.size} classes, the head {len(support)}.")
        is_frequent = frequent_classes(counts)
        per_class.update(train_count=counts, is_frequent=is_frequent)
        for group, members in (("frequent", is_frequent), ("rare", ~is_frequent)):
            summary[f"{group}_macro_f1"] = mean_over(per_class["f1"], members & averaged)
            summary[f"{group}_macro_ap"] = macro_average_precision(per_class["average_precision"], members)
    return HeadScores(per_class=per_class, summary=summary)


def exact_match_ratio(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Share of clips whose predicted label set is exactly their true one (a multi-label head's accuracy)."""
    exact = (np.asarray(targets).astype(bool) == np.asarray(predicted, dtype=bool)).all(axis=1)
    return float(exact.mean()) if len(exact) else 0.0


def best_f1_thresholds(targets: np.ndarray, probs: np.ndarray, default: float = 0.5) -> np.ndarray:
    """(C,) per-class probability thresholds of a multi-label head, each the one that gives its class the best
    F1 on these clips (the validation split): predict the class where ``prob >= threshold``. A class without
    positives here keeps ``default``. The threshold sits halfway between the last probability kept and the next,
    so clips scored like the validation ones fall on the same side."""
    is_positive, probs = np.asarray(targets).astype(bool), np.asarray(probs, dtype=float)
    thresholds = np.full(probs.shape[1], default, dtype=float)
    for column in range(probs.shape[1]):
        positives = int(is_positive[:, column].sum())
        if positives == 0:
            continue
        order = np.argsort(-probs[:, column], kind="stable")
        ranked, hits = probs[order, column], np.cumsum(is_positive[order, column])
        # Only cut between distinct scores: clips with the same probability are all in or all out.
        cuts = np.flatnonzero(np.append(ranked[1:] < ranked[:-1], True))
        f1 = 2 * hits[cuts] / (cuts + 1 + positives)
        best = cuts[int(np.argmax(f1))]
        below = ranked[best + 1] if best + 1 < len(ranked) else 0.0
        thresholds[column] = (ranked[best] + below) / 2
    return thresholds
