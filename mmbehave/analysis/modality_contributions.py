"""What each modality contributes: the drop in accuracy and F1 when it is removed at inference.

    probs["all"], probs["without_video"], probs["without_audio"]   (mmbehave.analysis.predictions)
        ──► per head: accuracy, macro-F1 and per-class F1 of each variant
        ──► drop = all − without_<m>      (> 0: the model needs that modality; ≈ 0: it ignores it)

A large drop can also mean the model never learned to work without that modality; training with
``training.modality_dropout`` (mmbehave.training.modality_dropout) makes the removed-modality scores
measure what the other modality can do alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmbehave.analysis.metrics_tables import (
    Thresholds,
    classes_of,
    head_summary,
    per_class_table,
)
from mmbehave.analysis.predictions import FULL, SplitPredictions
from mmbehave.core.figures import plt, save_figure, short_label
from mmbehave.data.metadata import ClassLists
from mmbehave.domain.heads import HeadSpec

ACCURACY, MACRO_F1 = "accuracy", "macro-F1"  # the two summary rows, before the per-class F1 rows


def removed_variants(predictions: SplitPredictions) -> list[str]:
    return [variant for variant in predictions.probs if variant != FULL]


def _scores(head: HeadSpec, targets: np.ndarray, probs: np.ndarray, names: list[str],
            thresholds: Thresholds | None) -> dict[str, float]:
    """{"accuracy", "macro-F1", then each class name: its F1} for one head and variant (a multi head's
    accuracy: the exact-match ratio)."""
    summary = head_summary(targets, probs, 1, head=head, thresholds=thresholds)
    per_class = per_class_table(targets, probs, names, head=head, thresholds=thresholds)
    return {ACCURACY: summary["acc"], MACRO_F1: summary["macro_f1"], **dict(zip(per_class["class"], per_class["f1"]))}


def contribution_table(predictions: SplitPredictions, classes: ClassLists,
                       thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Rows (head, metric) with metric accuracy, macro-F1 or a class name (its F1); columns: the score with all
    modalities, without each one, and ``drop_without_<m>`` = all − without. Empty for a one-modality model."""
    variants = removed_variants(predictions)
    if not variants:
        return pd.DataFrame()
    rows = []
    for head in predictions.heads:
        names = classes_of(classes, head.name)
        targets = predictions.targets[head.name]
        support = targets.sum(axis=0) if head.multi else np.bincount(targets, minlength=len(names))
        scores = {v: _scores(head, targets, predictions.probs[v][head.name], names, thresholds)
                  for v in (FULL, *variants)}
        for metric in scores[FULL]:
            if metric in names and support[names.index(metric)] == 0:
                continue  # a class absent from this split has no F1 to lose
            row = {"head": head.name, "metric": metric, FULL: scores[FULL][metric]}
            row.update({v: scores[v][metric] for v in variants})
            row.update({f"drop_{v}": scores[FULL][metric] - scores[v][metric] for v in variants})
            rows.append(row)
    return pd.DataFrame(rows)


def flat_drops(table: pd.DataFrame) -> dict[str, float]:
    """{"without_audio/macro_f1": ..., "without_audio/species_acc": ...}: the removed-modality scores to log,
    named like the full model's ``species_acc`` / ``species_macro_f1`` / ``macro_f1``."""
    if table.empty:
        return {}
    flat: dict[str, float] = {}
    variants = [c for c in table.columns if c.startswith("without_")]
    heads = list(dict.fromkeys(table["head"]))
    for variant in variants:
        for head in heads:
            rows = table[table["head"] == head].set_index("metric")
            flat[f"{variant}/{head}_acc"] = float(rows.at[ACCURACY, variant])
            flat[f"{variant}/{head}_macro_f1"] = float(rows.at[MACRO_F1, variant])
        flat[f"{variant}/macro_f1"] = float(np.mean([flat[f"{variant}/{head}_macro_f1"] for head in heads]))
    return flat


def plot_contributions(table: pd.DataFrame, title: str, path: str | Path) -> Path:
    """One panel per head: for accuracy, macro-F1 and each class's F1, a bar per removed modality showing
    how much the score drops without it."""
    variants = [c.removeprefix("drop_") for c in table.columns if c.startswith("drop_")]
    colours = {"without_video": "tab:blue", "without_audio": "tab:orange"}
    panels = [(head, table[table["head"] == head]) for head in dict.fromkeys(table["head"])]
    widest = max(len(rows) for _, rows in panels)
    figure, axes = plt.subplots(len(panels), 1, figsize=(max(7.0, 0.75 * widest + 2.0), 3.6 * len(panels)),
                                squeeze=False)
    width = 0.8 / len(variants)
    for axis, (head, rows) in zip(axes[:, 0], panels):
        positions = np.arange(len(rows))
        for index, variant in enumerate(variants):
            offset = (index - (len(variants) - 1) / 2) * width
            axis.bar(positions + offset, rows[f"drop_{variant}"], width, label=variant.removeprefix("without_") + " removed",
                     color=colours.get(variant))
        axis.axhline(0.0, color="black", linewidth=0.8)
        labels = [m if m in (ACCURACY, MACRO_F1) else short_label(m) for m in rows["metric"]]
        axis.set_xticks(positions, labels, rotation=30, ha="right")
        axis.axvline(1.5, color="grey", linewidth=0.8, linestyle=":")  # summary scores | per-class F1
        axis.set_ylabel("score drop (all − without)")
        axis.set_title(f"{head}: accuracy, macro-F1, then F1 per class")
        axis.legend(fontsize=8, loc="best")
    figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)
