"""Confusion matrices: which classes a head mixes up, as a CSV of counts and a labelled PNG.

Rows are true classes, columns predicted ones. The PNG colours each row by the share of that true class
(so rare classes are as visible as common ones) and prints the counts in the cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmbehave.core.figures import plt, save_figure, short_label
from mmbehave.metrics.confusion import confusion_matrix


def confusion_frame(targets: np.ndarray, predicted: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Counts: one row per true class, one column per predicted class, both named."""
    matrix = confusion_matrix(targets, predicted, len(names))
    return pd.DataFrame(matrix, index=pd.Index(names, name="true \\ predicted"), columns=names)


def plot_confusion(frame: pd.DataFrame, title: str, path: str | Path) -> Path:
    """Row-normalised heat map with counts; class names on both axes; a colour bar for the share."""
    counts = frame.to_numpy()
    names = [short_label(n) for n in frame.columns]
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    size = max(4.0, 0.6 * len(names) + 2.5)
    figure, axes = plt.subplots(figsize=(size + 1.2, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    if len(names) <= 30:  # beyond that the numbers no longer fit their cells
        for row in range(len(names)):
            for column in range(len(names)):
                axes.text(column, row, str(counts[row, column]), ha="center", va="center", fontsize=8,
                          color="white" if shares[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class's clips")
    return save_figure(figure, path)
