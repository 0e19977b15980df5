"""Command line: compare a study's runs from MLflow in a table and a plot.

    python -m mmbehave.report experiment_name=modality_ablation            # val/macro_f1 per modality setting
    python -m mmbehave.report experiment_name=mbt group_by=null sweep_id=latest   # best trials of the last sweep
    python -m mmbehave.report experiment_name=guide group_by=modalities metric=val/species_macro_f1
    python -m mmbehave.report metric=val/behavior_macro_f1 'extra_metrics=[val/behavior_macro_ap,val/behavior_rare_macro_f1]'
    python -m mmbehave.report experiment_name=site_cv sweep_id=latest group_by=fold metric=test/macro_f1   # per fold

Reads the experiment's FINISHED training runs (``mlflow.search_runs`` into pandas; sweep parent runs are
left out), one row per value of ``group_by`` with the metric's mean, spread (standard deviation over the
runs, e.g. seeds), min and max (and the mean of each of ``extra_metrics``), and writes ``report.md``,
``report.csv`` (the grouped table), ``runs.csv`` and ``report.png`` (mean with spread, every run as a dot)
to ``output_dir``. Any logged metric can be ``metric``: the long-tail scores too (``val/behavior_macro_ap``,
``val/behavior_rare_macro_f1``, and after ``evaluate`` e.g. ``test/behavior_macro_ap``).
"""

from __future__ import annotations

from omegaconf import DictConfig

from mmbehave.core.cli import command


@command("report")
def main(cfg: DictConfig) -> None:
    from mmbehave.analysis.run_report import write_report
    from mmbehave.tracking.store import check_server_answers, resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(cfg.mlflow.tracking_uri)
    check_server_answers(tracking_uri)
    out = write_report(cfg, tracking_uri)
    print((out / "report.md").read_text())
    print(f"Written: {out / 'report.md'}, report.csv, runs.csv{', report.png' if (out / 'report.png').exists() else ''}")


if __name__ == "__main__":
    main()
