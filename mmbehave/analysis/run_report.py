"""The work of ``python -m mmbehave.report``: finished runs of an experiment (or one sweep) from MLflow, grouped by a
param, as mean and spread per group with a figure, and the best runs."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.errors import ReportError
from mmbehave.core.redact import redact

log = logging.getLogger(__name__)


def load_runs(tracking_uri: str, experiment_name: str, sweep_id: str | None = None):
    """(finished training runs as a DataFrame with ``params.*``, ``metrics.*``, ``tags.*`` columns, the swept
    axes: the ``search.*`` params of their sweeps' parent runs)."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment_name) is None:
        names = ", ".join(e.name for e in mlflow.search_experiments()) or "none"
        raise ReportError(f"experiment_name={experiment_name}: no such MLflow experiment in {redact(tracking_uri)} "
                          f"(experiments: {names}).")
    runs = mlflow.search_runs(experiment_names=[experiment_name], output_format="pandas")
    if runs.empty:
        raise ReportError(f"experiment_name={experiment_name} has no runs yet.")
    # Sweep parent runs carry the `sweeper` tag; everything else is a training run.
    is_parent = runs["tags.sweeper"].notna() if "tags.sweeper" in runs else pd.Series(False, index=runs.index)
    if sweep_id:
        parents = runs[is_parent].sort_values("start_time")
        if sweep_id == "latest":
            if parents.empty:
                raise ReportError(f"sweep_id=latest: experiment {experiment_name} has no multirun.")
            sweep_id = parents["tags.sweep_id"].iloc[-1]
        if "tags.sweep_id" not in runs or not (runs["tags.sweep_id"] == sweep_id).any():
            known = ", ".join(parents.get("tags.sweep_id", [])) or "none"
            raise ReportError(f"sweep_id={sweep_id}: no such sweep in {experiment_name} (sweeps: {known}).")
        keep = runs["tags.sweep_id"] == sweep_id
        runs, is_parent = runs[keep], is_parent[keep]
    swept = [c.removeprefix("params.search.") for c in runs
             if c.startswith("params.search.") and runs[is_parent][c].notna().any()]
    return runs[~is_parent & (runs["status"] == "FINISHED")].reset_index(drop=True), swept


def compare(runs, group_by: str | None, metric: str, swept: list[str] = (), extra_metrics: list[str] = ()):
    """(grouped table, per-run table). Grouped: one row per ``group_by`` value, best mean first. The per-run
    table shows the swept axes (those of ``swept`` logged as params) and the seed and modalities if they vary.
    ``extra_metrics`` (e.g. the long-tail scores beside macro-F1) ride along: their value per run, their mean
    per group; the order stays ``metric``'s."""
    import pandas as pd

    column = f"metrics.{metric}"
    for key, name in [("metric", metric), *(("extra_metrics", m) for m in extra_metrics)]:
        if f"metrics.{name}" not in runs:
            known = ", ".join(sorted(c.removeprefix("metrics.") for c in runs if c.startswith("metrics.")))
            raise ReportError(f"{key}={name} was not logged by these runs (metrics: {known}).")
    extra_metrics = [m for m in dict.fromkeys(extra_metrics) if m != metric]
    per_run = pd.DataFrame({"run_name": runs["tags.mlflow.runName"], metric: runs[column],
                            **{name: runs[f"metrics.{name}"] for name in extra_metrics}})
    varying = [k for k in ("modalities", "seed") if f"params.{k}" in runs and runs[f"params.{k}"].nunique() > 1]
    axes = list(dict.fromkeys([*varying, *(k for k in swept if f"params.{k}" in runs)]))
    for name in axes:
        per_run[name] = runs[f"params.{name}"]
    per_run["run_id"] = runs["run_id"]
    per_run = per_run.sort_values(metric, ascending=metric.endswith("loss")).reset_index(drop=True)
    if not group_by:
        return None, per_run
    # A param (fusion.num_layers, modalities) or a tag (fold: a cross-validation's folds)
    key = next((f"{kind}.{group_by}" for kind in ("params", "tags") if f"{kind}.{group_by}" in runs), None)
    if key is None:
        raise ReportError(f"group_by={group_by} is not a param or tag of these runs (swept: {', '.join(axes) or 'none'}"
                          f"{'; group_by=fold: its cross-validation folds' if 'tags.fold' in runs else ''}).")
    per_run[group_by] = runs[key]
    values = runs[column].groupby(runs[key])
    seeds = runs["params.seed"].groupby(runs[key]).nunique() if "params.seed" in runs else None
    table = pd.DataFrame({"runs": values.size(), "seeds": seeds, "mean": values.mean(), "spread": values.std(ddof=1),
                          "min": values.min(), "max": values.max(),
                          **{f"mean {name}": runs[f"metrics.{name}"].groupby(runs[key]).mean()
                             for name in extra_metrics}})
    table = table.sort_values("mean", ascending=metric.endswith("loss")).rename_axis(group_by).reset_index()
    return table, per_run


def spread_over_rows(table) -> tuple[float, float] | None:
    """(mean, std) over the rows when each row is one run (a cross-validation's folds): then the spread worth
    showing is between the rows, not within them. None otherwise."""
    if len(table) < 2 or not (table["runs"] == 1).all():
        return None
    return float(table["mean"].mean()), float(table["mean"].std(ddof=1))


def plot(table, per_run, group_by: str, metric: str, path: Path) -> None:
    """Mean per group as a bar with the spread as an error bar; each run as a dot over its bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.6 + 1.2 * len(table), 3.6))
    positions = range(len(table))
    axes.bar(positions, table["mean"], yerr=table["spread"].fillna(0), capsize=6, color="#7aa6c2", alpha=0.8)
    for position, value in zip(positions, table[group_by]):
        points = per_run.loc[per_run[group_by] == value, metric] if group_by in per_run else table.loc[
            table[group_by] == value, "mean"]
        axes.scatter([position] * len(points), points, color="#1b3a4b", zorder=3, s=18)
    over_rows = spread_over_rows(table)
    if over_rows:
        mean, spread = over_rows
        axes.axhspan(mean - spread, mean + spread, color="#1b3a4b", alpha=0.12,
                     label=f"mean ± std over rows: {mean:.3f} ± {spread:.3f}")
        axes.axhline(mean, color="#1b3a4b", linewidth=1.2)
        axes.legend(loc="upper right", fontsize=8)
    axes.set_xticks(list(positions), [str(v) for v in table[group_by]])
    axes.set_xlabel(group_by)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} per {group_by} (bar: mean, error: std over runs)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(cfg: DictConfig, tracking_uri: str) -> Path:
    from mmbehave.core.markdown import markdown_table

    runs, swept = load_runs(tracking_uri, cfg.experiment_name, cfg.sweep_id)
    if runs.empty:
        raise ReportError(f"experiment_name={cfg.experiment_name}"
                          f"{f' sweep_id={cfg.sweep_id}' if cfg.sweep_id else ''}: no FINISHED runs to compare.")
    table, per_run = compare(runs, cfg.group_by, cfg.metric, swept, list(cfg.get("extra_metrics") or []))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    scope = f"sweep `{cfg.sweep_id}`" if cfg.sweep_id else "all runs"
    lines = [f"# {cfg.experiment_name}: {cfg.metric}", "",
             f"{len(runs)} finished runs ({scope}) from `{redact(tracking_uri)}`.", ""]
    if table is not None:
        table.to_csv(out / "report.csv", index=False)
        plot(table, per_run, cfg.group_by, cfg.metric, out / "report.png")
        lines += [f"## Per {cfg.group_by}", "", "spread: standard deviation over the runs of a row (seeds).", "",
                  markdown_table(table.to_dict("records")), "![plot](report.png)", ""]
        over_rows = spread_over_rows(table)
        if over_rows:
            lines[-2:-2] = [f"Over the {len(table)} rows (one run each, e.g. folds): mean {over_rows[0]:.4f}, "
                            f"std {over_rows[1]:.4f}.", ""]
    else:
        per_run.to_csv(out / "report.csv", index=False)
    per_run.to_csv(out / "runs.csv", index=False)
    lines += [f"## Runs (best {min(int(cfg.top), len(per_run))})", "",
              markdown_table(per_run.head(int(cfg.top)).to_dict("records"))]
    (out / "report.md").write_text("\n".join(lines))
    return out
