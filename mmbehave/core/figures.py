"""The figure conventions every plot shares (analysis, sweeps, benchmark): a headless backend, readable sizes,
atomic PNGs. In core because three layers draw figures and none may import another's."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; set before pyplot is imported anywhere
import matplotlib.pyplot as plt  # noqa: E402

from mmbehave.core.atomic import atomic_path  # noqa: E402

DPI = 110  # sharp enough to read class names, small enough (< 300 KB) to commit


def save_figure(figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG atomically, then close it (figures hold memory until closed)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(figure)
    return path


def short_label(name: str, limit: int = 18) -> str:
    """Class names as axis labels: underscores to spaces, long names cut with an ellipsis."""
    text = name.replace("_", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
