"""Class probabilities -> the columns of a prediction table, and segment probabilities -> one clip's.

    label_columns  species, species_prob, behavior, behavior_prob   (label ``uncertain`` below the threshold)
    top_k_columns  species_top<k>, behavior_top<k>                  ("name:prob|...", best first)
    wide_columns   p(species=<class>) ..., p(behavior=<class>) ...  (columns=wide; the names mlflow_model uses)
    combine        a clip's segment probabilities -> its own (aggregate=mean | max)

Both heads are single-label (softmax): each head's probabilities sum to 1, in every table. ``max`` takes each
class's highest probability over the segments (so a class seen clearly in one segment of a long clip is not
averaged away) and then rescales them to sum to 1 again, so that prob, top-k and threshold mean the same for
every aggregate; the rescaled values are relative, not the probability of any one segment.
"""

from __future__ import annotations

import numpy as np

from mmbehave.predicting.thresholds import HEADS, label_or_uncertain

AGGREGATES = ("mean", "max")
DECIMALS = 4


def class_names(trained) -> dict[str, list[str]]:
    return {"species": list(trained.classes.species), "behavior": list(trained.classes.behaviors)}


def combine(segment_probs: list[dict[str, np.ndarray]], aggregate: str) -> dict[str, np.ndarray]:
    """{head: probabilities} per segment -> the clip's {head: probabilities}, summing to 1 per head."""
    combined = {}
    for head in segment_probs[0]:
        stacked = np.stack([probs[head] for probs in segment_probs])
        if aggregate == "mean":
            combined[head] = stacked.mean(axis=0)
        else:
            highest = stacked.max(axis=0)
            combined[head] = highest / highest.sum()
    return combined


def label_columns(names: dict[str, list[str]], probs: dict[str, np.ndarray],
                  thresholds: dict[str, float]) -> dict[str, object]:
    row: dict[str, object] = {}
    for head in HEADS:
        best = int(probs[head].argmax())
        probability = float(probs[head][best])
        row[head] = label_or_uncertain(names[head][best], probability, thresholds.get(head))
        row[f"{head}_prob"] = round(probability, DECIMALS)
    return row


def top_k_columns(names: dict[str, list[str]], probs: dict[str, np.ndarray], k: int) -> dict[str, str]:
    return {f"{head}_top{k}": top_k_text(names[head], probs[head], k) for head in HEADS}


def top_k_text(names: list[str], probs: np.ndarray, k: int) -> str:
    order = probs.argsort()[::-1][:k]
    return "|".join(f"{names[i]}:{probs[i]:.{DECIMALS}f}" for i in order)


def wide_columns(names: dict[str, list[str]], probs: dict[str, np.ndarray]) -> dict[str, float]:
    return {f"p({head}={name})": round(float(probs[head][index]), DECIMALS)
            for head in HEADS for index, name in enumerate(names[head])}
