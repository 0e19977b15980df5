"""Class probabilities -> the columns of a prediction table, and segment probabilities -> one clip's.

    answer_columns  single head: <head>, <head>_prob  (label ``uncertain`` below the threshold)
                    multi head:  <head>               (every label at or above its threshold, joined by the
                                                       head's separator: walking|vocalizing; empty for none)
    top_k_columns   <head>_top<k>                     ("name:prob|...", best first)
    wide_columns    p(<head>=<class>) ...             (columns=wide; the names mlflow_pyfunc_model uses)
    combine         a clip's segment probabilities -> its own (aggregate=mean | max)

A single head's probabilities sum to 1 (softmax), in every table. ``max`` takes each class's highest
probability over the segments (so a class seen clearly in one segment of a long clip is not averaged away);
for a single head it then rescales them to sum to 1 again, so that prob, top-k and threshold mean the same for
every aggregate (the rescaled values are relative, not the probability of any one segment). A multi head's
probabilities are independent per class (sigmoid) and are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmbehave.domain.heads import HeadSpec
from mmbehave.predicting.thresholds import Threshold, label_or_uncertain

AGGREGATES = ("mean", "max")
DECIMALS = 4


def classes_by_head(trained) -> dict[str, list[str]]:
    return trained.classes.to_dict()


def combine(segment_probs: list[dict[str, np.ndarray]], aggregate: str,
            multi: frozenset[str] | set[str] = frozenset()) -> dict[str, np.ndarray]:
    """{head: probabilities} per segment -> the clip's {head: probabilities}. ``multi``: the multi-label heads."""
    combined = {}
    for head in segment_probs[0]:
        stacked = np.stack([probs[head] for probs in segment_probs])
        if aggregate == "mean":
            combined[head] = stacked.mean(axis=0)
        else:
            highest = stacked.max(axis=0)
            combined[head] = highest if head in multi else highest / highest.sum()
    return combined


def answer_columns(heads: Sequence[HeadSpec], names: dict[str, list[str]], probs: dict[str, np.ndarray],
                  thresholds: dict[str, Threshold]) -> dict[str, object]:
    row: dict[str, object] = {}
    for head in heads:
        scores = probs[head.name]
        if head.multi:
            chosen = scores >= thresholds.get(head.name, 0.5)
            row[head.name] = head.labels_text(names[head.name], chosen)
            continue
        best = int(scores.argmax())
        probability = float(scores[best])
        row[head.name] = label_or_uncertain(names[head.name][best], probability, thresholds.get(head.name))
        row[f"{head.name}_prob"] = round(probability, DECIMALS)
    return row


def top_k_columns(names: dict[str, list[str]], probs: dict[str, np.ndarray], k: int) -> dict[str, str]:
    return {f"{head}_top{k}": top_k_text(names[head], probs[head], k) for head in names}


def top_k_text(names: list[str], probs: np.ndarray, k: int) -> str:
    order = probs.argsort()[::-1][:k]
    return "|".join(f"{names[i]}:{probs[i]:.{DECIMALS}f}" for i in order)


def wide_columns(names: dict[str, list[str]], probs: dict[str, np.ndarray]) -> dict[str, float]:
    return {f"p({head}={name})": round(float(probs[head][index]), DECIMALS)
            for head in names for index, name in enumerate(names[head])}
