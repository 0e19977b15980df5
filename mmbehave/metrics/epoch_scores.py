"""One epoch's scores of one head, single- or multi-label, under the names epoch_metrics.py lists.

    single head: probs = softmax; acc (= micro-F1), macro_f1, macro_ap, micro_f1, rare_macro_f1
    multi head:  probs = sigmoid, predicted at 0.5; acc = exact-match ratio (every label right), macro_f1,
                 macro_ap (the mAP MammAlps reports), micro_f1, samples_f1, rare_macro_f1

Validation uses the fixed 0.5 for multi heads, so epochs compare on one footing; the per-class thresholds
chosen on the best epoch's validation clips (``best_f1_thresholds``) go to the checkpoint for evaluate and
predict, which would otherwise score the split they were tuned on.
"""

from __future__ import annotations

import numpy as np
import torch

from mmbehave.domain.heads import HeadSpec
from mmbehave.metrics.class_scores import (
    exact_match_ratio,
    multi_label_scores,
    single_label_scores,
)
from mmbehave.metrics.confusion import accuracy_and_macro_f1, confusion_matrix
from mmbehave.metrics.metric_names import per_head_keys

MULTI_LABEL_THRESHOLD = 0.5


def probabilities(head: HeadSpec, logits: torch.Tensor) -> np.ndarray:
    """(B, C) class probabilities: softmax over a single head's classes, a sigmoid per class of a multi head."""
    logits = logits.detach().float()
    return (torch.sigmoid(logits) if head.multi else torch.softmax(logits, dim=-1)).cpu().numpy()


def head_metrics(head: HeadSpec, targets: np.ndarray, probs: np.ndarray,
                 train_counts: list[int] | None = None) -> dict[str, float]:
    """{key: value} for the keys ``per_head_keys(head)`` names (rare_macro_f1 only with ``train_counts``)."""
    if head.multi:
        scores = multi_label_scores(targets, probs, MULTI_LABEL_THRESHOLD, train_counts).summary
        values = {"acc": exact_match_ratio(targets, probs >= MULTI_LABEL_THRESHOLD), **scores}
    else:
        matrix = confusion_matrix(targets, probs.argmax(axis=1), probs.shape[1])
        accuracy, macro_f1 = accuracy_and_macro_f1(matrix)
        values = {**single_label_scores(targets, probs, train_counts).summary, "acc": accuracy, "macro_f1": macro_f1}
    return {key: values[key] for key in per_head_keys(head) if key in values}
