"""Test-set metrics per head: the summary (accuracy, macro-F1, top-k) and the per-class table.

    targets (N,), probs (N, C) ──► confusion matrix ──► accuracy, macro-F1        (mmbehave.training.metrics,
                               │                    └─► precision, recall, F1,     the same code validation uses)
                               │                        support per class
                               └─► top-k accuracy: the true class among the k most probable

Macro-F1 averages over the classes in the targets or the predictions (as scikit-learn does), as during
training, so ``test/macro_f1`` and ``val/macro_f1`` mean the same thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mmbehave.analysis.predictions import FULL, HEADS, SplitPredictions
from mmbehave.core.atomic import atomic_path, write_text_atomic
from mmbehave.data.metadata import ClassLists
from mmbehave.training.metrics import (
    accuracy_and_macro_f1,
    confusion_matrix,
    per_class_scores,
)


def class_names(classes: ClassLists, head: str) -> list[str]:
    return list(classes.species if head == "species" else classes.behaviors)


def top_k_accuracy(targets: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of clips whose true class is among the ``k`` most probable (k is capped at the class count)."""
    if len(targets) == 0:
        return 0.0
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())


def head_summary(targets: np.ndarray, probs: np.ndarray, top_k: int) -> dict[str, float]:
    """{"acc", "macro_f1", f"top{k}_acc"} for one head."""
    matrix = confusion_matrix(targets, probs.argmax(axis=1), probs.shape[1])
    accuracy, macro_f1 = accuracy_and_macro_f1(matrix)
    return {"acc": accuracy, "macro_f1": macro_f1, f"top{top_k}_acc": top_k_accuracy(targets, probs, top_k)}


def per_class_table(targets: np.ndarray, probs: np.ndarray, names: list[str]) -> pd.DataFrame:
    """One row per class: class, precision, recall, f1, support (sklearn's zero_division=0 convention)."""
    scores = per_class_scores(confusion_matrix(targets, probs.argmax(axis=1), len(names)))
    return pd.DataFrame({"class": names, **{key: scores[key] for key in ("precision", "recall", "f1", "support")}})


def summary_metrics(predictions: SplitPredictions, top_k: int, variant: str = FULL) -> dict[str, float]:
    """Flat {"species_acc", "species_macro_f1", "species_top3_acc", ..., "macro_f1"} (macro_f1: mean of the heads')."""
    flat: dict[str, float] = {}
    for head in HEADS:
        for key, value in head_summary(predictions.targets[head], predictions.probs[variant][head], top_k).items():
            flat[f"{head}_{key}"] = value
    flat["macro_f1"] = (flat["species_macro_f1"] + flat["behavior_macro_f1"]) / 2
    return flat


def subset_metrics(predictions: SplitPredictions, top_k: int) -> dict[str, float]:
    """Summary metrics on the clips that lack a modality and on those that have it, when a split has both kinds:
    {"clips_without_audio/macro_f1": ..., "clips_with_audio/macro_f1": ..., ...}. This is where fusion has to
    prove itself on camera-trap data, where most clips have no sound."""
    flat: dict[str, float] = {}
    for modality, has in predictions.present.items():
        if has.all() or not has.any():
            continue
        for name, rows in ((f"clips_without_{modality}", ~has), (f"clips_with_{modality}", has)):
            summary = summary_metrics(predictions.subset(rows), top_k)
            flat.update({f"{name}/{key}": value for key, value in summary.items()})
            flat[f"{name}/num_clips"] = float(rows.sum())
    return flat


def per_class_tables(predictions: SplitPredictions, classes: ClassLists, variant: str = FULL) -> pd.DataFrame:
    """Both heads' per-class tables stacked, with a ``head`` column first."""
    frames = []
    for head in HEADS:
        table = per_class_table(predictions.targets[head], predictions.probs[variant][head], class_names(classes, head))
        frames.append(table.assign(head=head)[["head", *table.columns]])
    return pd.concat(frames, ignore_index=True)


def summary_table(summary: dict[str, float], num_clips: int, top_k: int) -> pd.DataFrame:
    """Rows: species, behavior; columns: clips, accuracy, macro_f1, top-k accuracy."""
    rows = [{"head": head, "clips": num_clips, "accuracy": summary[f"{head}_acc"],
             "macro_f1": summary[f"{head}_macro_f1"], f"top{top_k}_accuracy": summary[f"{head}_top{top_k}_acc"]}
            for head in HEADS]
    return pd.DataFrame(rows)


def predictions_table(predictions: SplitPredictions, classes: ClassLists) -> pd.DataFrame:
    """One row per clip: true and predicted class (and its probability) per head."""
    table = {"clip_id": predictions.clip_ids}
    for head in HEADS:
        names = np.array(class_names(classes, head))
        probs = predictions.probs[FULL][head]
        table[f"{head}_true"] = names[predictions.targets[head]]
        table[f"{head}_predicted"] = names[probs.argmax(axis=1)]
        table[f"{head}_prob"] = probs.max(axis=1).round(4)
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
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
