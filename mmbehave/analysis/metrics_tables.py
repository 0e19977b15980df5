"""Test-set metrics per head: the summary (accuracy, macro-F1, top-k, long-tail scores) and the per-class table.

    single head: targets (N,), probs (N, C) ──► confusion matrix ──► accuracy, macro-F1   (mmbehave.metrics.confusion,
                               │                                          the same code validation uses)
                               ├─► class_metrics ──► per class: precision, recall, F1, support, AP;
                               │   (+ train counts)  macro / micro P, R, F1; macro AP; frequent / rare macro-F1, AP
                               └─► top-k accuracy: the true class among the k most probable
    multi head: targets (N, C) 0/1, probs (N, C) sigmoid ──► labels at the checkpoint's per-class thresholds
                               ──► class_metrics: the same table, plus samples-F1; accuracy = exact-match ratio;
                                   macro AP is the mAP multi-label benchmarks report (threshold-free)

Macro-F1 averages over the classes in the targets or the predictions (as scikit-learn does), as during
training, so ``test/macro_f1`` and ``val/macro_f1`` mean the same thing. Head classes are those trained on
more clips than the median class, from the counts the checkpoint records (mmbehave.metrics.class_scores
says why each convention); a checkpoint from before those counts has no frequent/rare scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mmbehave.analysis.predictions import FULL, SplitPredictions
from mmbehave.core.atomic import atomic_path, write_text_atomic
from mmbehave.data.metadata import ClassLists
from mmbehave.domain.heads import HeadSpec
from mmbehave.metrics.class_scores import (
    HeadScores,
    exact_match_ratio,
    multi_label_scores,
    single_label_scores,
)
from mmbehave.metrics.confusion import accuracy_and_macro_f1, confusion_matrix

Thresholds = dict[str, list[float]]  # {multi head: per-class probability thresholds}

# The long-tail scores the summary table shows besides accuracy, macro-F1 and top-k (metrics.json has them all).
SUMMARY_COLUMNS = ("macro_precision", "macro_recall", "micro_f1", "macro_ap", "frequent_macro_f1", "rare_macro_f1")


def classes_of(classes: ClassLists, head: str) -> list[str]:
    return list(classes[head])


def threshold_of(head: HeadSpec, thresholds: Thresholds | None, num_classes: int) -> np.ndarray:
    """A multi head's per-class thresholds (0.5 where none were stored)."""
    values = (thresholds or {}).get(head.name)
    return np.asarray(values, dtype=float) if values is not None and len(values) == num_classes else np.full(num_classes, 0.5)


def class_scores(head: HeadSpec, targets: np.ndarray, probs: np.ndarray, train_counts: list[int] | None = None,
                 thresholds: Thresholds | None = None) -> HeadScores:
    """class_metrics' scores of one head, single- or multi-label (at its thresholds)."""
    if head.multi:
        return multi_label_scores(targets, probs, threshold_of(head, thresholds, probs.shape[1]), train_counts)
    return single_label_scores(targets, probs, train_counts)


def top_k_accuracy(targets: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of clips whose true class is among the ``k`` most probable (k is capped at the class count)."""
    if len(targets) == 0:
        return 0.0
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())


def head_summary(targets: np.ndarray, probs: np.ndarray, top_k: int, train_counts: list[int] | None = None,
                 head: HeadSpec | None = None, thresholds: Thresholds | None = None) -> dict[str, float]:
    """{"acc", "macro_f1", f"top{k}_acc", then class_metrics' summary: macro_ and micro_ precision / recall /
    f1, macro_ap, and with ``train_counts`` head_ / tail_ macro_f1 and macro_ap} for one head. A multi head:
    acc is the exact-match ratio, samples_f1 is added, and there is no top-k."""
    if head is not None and head.multi:
        summary = class_scores(head, targets, probs, train_counts, thresholds).summary
        return {"acc": exact_match_ratio(targets, probs >= threshold_of(head, thresholds, probs.shape[1])), **summary}
    matrix = confusion_matrix(targets, probs.argmax(axis=1), probs.shape[1])
    accuracy, macro_f1 = accuracy_and_macro_f1(matrix)
    long_tail = single_label_scores(targets, probs, train_counts).summary
    return {"acc": accuracy, "macro_f1": macro_f1, f"top{top_k}_acc": top_k_accuracy(targets, probs, top_k),
            **{key: value for key, value in long_tail.items() if key != "macro_f1"}}  # the same macro-F1


def per_class_table(targets: np.ndarray, probs: np.ndarray, names: list[str],
                    train_counts: list[int] | None = None, head: HeadSpec | None = None,
                    thresholds: Thresholds | None = None) -> pd.DataFrame:
    """One row per class: class, precision, recall, f1, support (sklearn's zero_division=0 convention),
    average_precision (empty where the split has no clip of the class), train_count and frequent_or_rare (empty
    without ``train_counts``); a multi head's rows add the threshold the class was predicted at."""
    if head is not None and head.multi:
        scores = class_scores(head, targets, probs, train_counts, thresholds).per_class
    else:
        scores = single_label_scores(targets, probs, train_counts).per_class
    table = pd.DataFrame({"class": names, **{key: scores[key] for key in
                                             ("precision", "recall", "f1", "support", "average_precision")}})
    if head is not None and head.multi:
        table = table.assign(threshold=threshold_of(head, thresholds, len(names)))
    if train_counts is None:
        return table.assign(train_count=pd.array([pd.NA] * len(names), dtype="Int64"), frequent_or_rare=None)
    return table.assign(train_count=scores["train_count"], frequent_or_rare=np.where(scores["is_frequent"], "frequent", "rare"))


def summary_metrics(predictions: SplitPredictions, top_k: int, variant: str = FULL,
                    train_counts: dict[str, list[int]] | None = None,
                    thresholds: Thresholds | None = None) -> dict[str, float]:
    """Flat {"species_acc", "species_macro_f1", "species_top3_acc", "species_macro_ap", ..., "macro_f1"}
    (macro_f1: mean of the heads'). ``train_counts``: {head: training clips per class}, for frequent/rare scores;
    ``thresholds``: the multi heads' per-class thresholds."""
    flat: dict[str, float] = {}
    for head in predictions.heads:
        summary = head_summary(predictions.targets[head.name], predictions.probs[variant][head.name], top_k,
                               train_counts[head.name] if train_counts else None, head, thresholds)
        for key, value in summary.items():
            flat[f"{head.name}_{key}"] = value
    flat["macro_f1"] = float(np.mean([flat[f"{head.name}_macro_f1"] for head in predictions.heads]))
    return flat


def subset_metrics(predictions: SplitPredictions, top_k: int, train_counts: dict[str, list[int]] | None = None,
                   thresholds: Thresholds | None = None) -> dict[str, float]:
    """Summary metrics on the clips that lack a modality and on those that have it, when a split has both kinds:
    {"clips_without_audio/macro_f1": ..., "clips_with_audio/macro_f1": ..., ...}. This is where fusion has to
    prove itself on camera-trap data, where most clips have no sound."""
    flat: dict[str, float] = {}
    for modality, has in predictions.present.items():
        if has.all() or not has.any():
            continue
        for name, rows in ((f"clips_without_{modality}", ~has), (f"clips_with_{modality}", has)):
            summary = summary_metrics(predictions.subset(rows), top_k, train_counts=train_counts, thresholds=thresholds)
            flat.update({f"{name}/{key}": value for key, value in summary.items()})
            flat[f"{name}/num_clips"] = float(rows.sum())
    return flat


def per_class_tables(predictions: SplitPredictions, classes: ClassLists, variant: str = FULL,
                     train_counts: dict[str, list[int]] | None = None,
                     thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Every head's per-class table stacked, with a ``head`` column first."""
    frames = []
    for head in predictions.heads:
        table = per_class_table(predictions.targets[head.name], predictions.probs[variant][head.name],
                                classes_of(classes, head.name), train_counts[head.name] if train_counts else None,
                                head, thresholds)
        frames.append(table.assign(head=head.name)[["head", *table.columns]])
    return pd.concat(frames, ignore_index=True)


def summary_table(summary: dict[str, float], num_clips: int, top_k: int, heads: list[str]) -> pd.DataFrame:
    """One row per head; columns: clips, accuracy (a multi head's: exact match), macro_f1, top-k accuracy
    (empty for a multi head), samples_f1 (multi heads) and the long-tail scores of SUMMARY_COLUMNS that were
    computed (frequent/rare: NaN where that group has no class)."""
    rows = [{"head": head, "clips": num_clips, "accuracy": summary[f"{head}_acc"],
             "macro_f1": summary[f"{head}_macro_f1"],
             f"top{top_k}_accuracy": summary.get(f"{head}_top{top_k}_acc", float("nan")),
             **{key: summary[f"{head}_{key}"] for key in (*SUMMARY_COLUMNS, "samples_f1") if f"{head}_{key}" in summary}}
            for head in heads]
    return pd.DataFrame(rows)


def predictions_table(predictions: SplitPredictions, classes: ClassLists,
                      thresholds: Thresholds | None = None) -> pd.DataFrame:
    """One row per clip: true and predicted class (and its probability) per head; a multi head's true and
    predicted labels joined by its separator, predicted at its thresholds."""
    table = {"clip_id": predictions.clip_ids}
    for head in predictions.heads:
        names = np.array(classes_of(classes, head.name))
        probs, targets = predictions.probs[FULL][head.name], predictions.targets[head.name]
        if head.multi:
            chosen = probs >= threshold_of(head, thresholds, len(names))
            table[f"{head.name}_true"] = [head.labels_text(names, row) for row in np.asarray(targets, dtype=bool)]
            table[f"{head.name}_predicted"] = [head.labels_text(names, row) for row in chosen]
            continue
        table[f"{head.name}_true"] = names[targets]
        table[f"{head.name}_predicted"] = names[probs.argmax(axis=1)]
        table[f"{head.name}_prob"] = probs.max(axis=1).round(4)
    return pd.DataFrame(table)


def format_report(summary: pd.DataFrame, per_class: pd.DataFrame) -> str:
    """The tables a person reads at the terminal."""
    lines = [summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"), ""]
    for head, table in per_class.groupby("head", sort=False):
        lines += [f"{head}:", table.drop(columns="head").to_string(index=False, float_format=lambda v: f"{v:.3f}"), ""]
    return "\n".join(lines)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_json(data: dict, path: str | Path) -> None:
    write_text_atomic(path, json.dumps(without_nan(data), indent=2, default=_json_default) + "\n")


def without_nan(value):
    """``value`` with every NaN (an undefined score: AP of a class without clips, a frequent/rare group without
    classes) and pandas' NA as None: JSON has no NaN, and json.dumps' bare ``NaN`` breaks strict readers."""
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nan(item) for item in value]
    if value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
