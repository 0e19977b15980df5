"""Test metrics over a multirun's runs (``training.test_at_end``; above all a cross-validation's folds): the
mean, the spread and every run's value, for the parent MLflow run, a table and a per-run figure.

    parent metrics   mean/test/<m>, std/test/<m>; fold/test/<m> with one step per run (step i: the i-th job),
                     so MLflow's chart of fold/test/macro_f1 is the per-fold picture
    test_over_runs.csv   one row per run: job, run name, fold, held_out, every test metric
    test_over_runs.png   test/macro_f1 per run (per fold) as bars, the mean as a line, the spread as a band
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

HEADLINE = "test/macro_f1"


def finished_in_job_order(children: list) -> list:
    return sorted((run for run in children if run.info.status == "FINISHED"),
                  key=lambda run: int(run.data.tags.get("sweep_job", -1)))


def test_over_runs(children: list) -> dict[str, dict[str, Any]]:
    """Every ``test/*`` metric all finished runs have: its mean, standard deviation (over runs, ddof=1; 0 for
    one run) and per-run values in job order."""
    finished = finished_in_job_order(children)
    keys = set.intersection(*({k for k in run.data.metrics if k.startswith("test/")} for run in finished)) \
        if finished else set()
    summary = {}
    for key in sorted(keys):
        values = [float(run.data.metrics[key]) for run in finished]
        summary[key] = {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        "values": values}
    return summary


def parent_metrics(over_runs: dict[str, dict[str, Any]]) -> list:
    """mean/ and std/ of every test metric, and its per-run values as the steps of fold/<metric>."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"{stat}/{key}", value[stat], now, 0) for key, value in over_runs.items() for stat in ("mean", "std")]
    metrics += [Metric(f"fold/{key}", run_value, now, step)
                for key, value in over_runs.items() for step, run_value in enumerate(value["values"])]
    return metrics


def run_rows(children: list, over_runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for index, run in enumerate(finished_in_job_order(children)):
        tags = run.data.tags
        rows.append({"job": tags.get("sweep_job", ""), "run_name": run.info.run_name or run.info.run_id,
                     "fold": tags.get("fold", ""), "held_out": tags.get("held_out", ""),
                     **{key: value["values"][index] for key, value in over_runs.items()}})
    return rows


def write_over_runs(children: list, over_runs: dict[str, dict[str, Any]], folder: Path) -> list[Path]:
    """``test_over_runs.csv`` and, when the headline metric is there, ``test_over_runs.png`` in ``folder``."""
    import pandas as pd

    from mmbehave.core.atomic import atomic_path

    rows = run_rows(children, over_runs)
    table = folder / "test_over_runs.csv"
    with atomic_path(table) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    if HEADLINE not in over_runs:
        return [table]
    return [table, plot_over_runs(rows, over_runs[HEADLINE], folder / "test_over_runs.png")]


def plot_over_runs(rows: list[dict[str, Any]], headline: dict[str, Any], path: Path) -> Path:
    """The headline test metric per run (fold), its mean and the mean ± std band: how far one held-out site
    can fall from the average is the point of a cross-validation, so each fold is a bar of its own."""
    from mmbehave.core.figures import plt, save_figure, short_label

    labels = [short_label(f"{row['fold']}: {row['held_out']}" if row["fold"] else str(row["run_name"]), 24)
              for row in rows]
    mean, spread = headline["mean"], headline["std"]
    figure, axes = plt.subplots(figsize=(1.8 + 0.9 * len(rows), 3.6))
    positions = range(len(rows))
    axes.bar(positions, headline["values"], color="#7aa6c2")
    axes.axhspan(mean - spread, mean + spread, color="#1b3a4b", alpha=0.12, label=f"mean ± std: {mean:.3f} ± {spread:.3f}")
    axes.axhline(mean, color="#1b3a4b", linewidth=1.2)
    axes.set_xticks(list(positions), labels, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel(HEADLINE)
    axes.set_ylim(0, 1)
    axes.legend(loc="upper right", fontsize=8)
    unit = "fold" if all(row["fold"] for row in rows) else "run"
    axes.set_title(f"{HEADLINE} per {unit} ({len(rows)} {unit}s)", fontsize=9)
    return save_figure(figure, path)
