"""What a finished sweep reports: the results file (best trial or Pareto front, and every failure with its
reason), a Markdown table, Optuna's plots, and all of it on the sweep's MLflow parent run.

Optuna sweeps extend the sweeper's own ``optimization_results.yaml``; grid sweeps (the basic sweeper, e.g.
the modality ablation) get ``sweep_results.yaml`` in the same sweep folder.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from mmbehave.core.markdown import markdown_table
from mmbehave.core.redact import redact
from mmbehave.sweeps.over_runs import (
    HEADLINE,
    parent_metrics,
    test_over_runs,
    write_over_runs,
)
from mmbehave.sweeps.study import trial_record

log = logging.getLogger(__name__)


def optuna_results(study: optuna.Study, storage: str, sweep_trials: list[int], objectives: list[str],
                   failure_reasons: dict[int, str], run_id_of: Callable[[int], str | None]) -> dict[str, Any]:
    """The study as a whole (best trial or Pareto front, trial counts) and this sweep's trials and failures."""
    trials = study.get_trials(deepcopy=False)
    mine = [t for t in trials if t.number in set(sweep_trials)]
    results: dict[str, Any] = {
        "study": study.study_name,
        "storage": redact(storage),
        "objectives": {name: d.name.lower() for name, d in zip(objectives, study.directions)},
        "trials_in_study": dict(Counter(t.state.name for t in trials)),
        "trials_this_sweep": [t.number for t in mine],
        "failures": [{**trial_record(t), "reason": failure_reasons.get(t.number, "no reason recorded"),
                      "mlflow_run_id": run_id_of(t.number)} for t in mine if t.state == TrialState.FAIL],
    }
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return results
    if len(study.directions) == 1:
        best = study.best_trial
        results["best_trial"] = {**trial_record(best), "mlflow_run_id": run_id_of(best.number)}
    else:
        results["pareto_front"] = [{**trial_record(t), "mlflow_run_id": run_id_of(t.number)}
                                   for t in sorted(study.best_trials, key=lambda t: t.number)]
    return results


def grid_results(children: list, objectives: list[str]) -> dict[str, Any]:
    """A basic-sweeper multirun from its MLflow child runs: each job's overrides, status and values."""
    jobs = []
    for run in sorted(children, key=lambda r: int(r.data.tags.get("sweep_job", -1))):
        job = {"job": int(run.data.tags.get("sweep_job", -1)), "status": run.info.status,
               "overrides": run.data.tags.get("hydra_overrides", ""), "mlflow_run_id": run.info.run_id}
        job.update({name: run.data.metrics[name] for name in objectives if name in run.data.metrics})
        if run.info.status != "FINISHED":
            job["reason"] = run.data.tags.get("failure_reason", run.info.status)
        jobs.append(job)
    return {"jobs": jobs, "failures": [job for job in jobs if job["status"] != "FINISHED"]}


def pareto_table(front: list[dict[str, Any]], objectives: list[str]) -> str:
    rows = [{"trial": p["trial"], **dict(zip(objectives, p["values"])), **p["params"]} for p in front]
    return markdown_table(rows)


def write_study_plots(study: optuna.Study, out_dir: Path, objectives: list[str]) -> list[Path]:
    """Optimisation history, parameter importances and parallel coordinates (of the first objective), plus
    the Pareto front for multi-objective studies. A plot Optuna cannot draw yet (too few trials) is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    multi = len(study.directions) > 1
    first = {"target": (lambda t: t.values[0]) if multi else None, "target_name": objectives[0]}
    plots: dict[str, Callable[[], Any]] = {
        "optimization_history.png": lambda: vis.plot_optimization_history(study, **first),
        "param_importances.png": lambda: vis.plot_param_importances(study, **first),
        "parallel_coordinate.png": lambda: vis.plot_parallel_coordinate(study, **first),
    }
    if multi:
        plots["pareto_front.png"] = lambda: vis.plot_pareto_front(study, target_names=objectives)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" warnings of the matplotlib backend
                axes = draw()
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            figure.savefig(out_dir / name, dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(out_dir / name)
        except Exception as error:  # e.g. importances need two finished trials with different values
            log.info("Plot %s skipped: %s", name, error)
    return written


def report_study(client: Any, parent_run_id: str, experiment_id: str, study: optuna.Study, storage: str,
                 sweep_trials: list[int], objectives: list[str], children: list, sweep_dir: Path) -> dict[str, Any]:
    """An Optuna sweep's end: extend ``optimization_results.yaml``, write ``trials.csv`` (the whole study),
    plots and the Pareto front, and log them with the best trial (params ``best.*``, metric
    ``best/<objective>``, tags ``best_trial`` and ``best_run_id``) to the parent run. Returns the results."""
    from mlflow.entities import Param, RunTag

    by_trial = {int(r.data.tags["optuna_trial"]): r for r in children if "optuna_trial" in r.data.tags}
    reasons = {number: r.data.tags.get("failure_reason", r.info.status) for number, r in by_trial.items()}

    def run_id_of(number: int) -> str | None:  # the best trial may come from an earlier sweep of the study
        if number in by_trial:
            return by_trial[number].info.run_id
        found = client.search_runs([experiment_id], f"tags.optuna_study = '{study.study_name}' and "
                                   f"tags.optuna_trial = '{number}'", max_results=1)
        return found[0].info.run_id if found else None

    results = optuna_results(study, storage, sweep_trials, objectives, reasons, run_id_of)
    path = sweep_dir / "optimization_results.yaml"  # the sweeper's file (absent if the sweep stopped early)
    written = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
    OmegaConf.save(OmegaConf.create({**written, **results}), path)
    study.trials_dataframe().to_csv(sweep_dir / "trials.csv", index=False)
    artifacts = [path, sweep_dir / "trials.csv", *write_study_plots(study, sweep_dir / "plots", objectives)]
    tags = {"optuna_trials_after": str(len(study.trials))}
    if "best_trial" in results:
        best = results["best_trial"]
        client.log_batch(parent_run_id, params=[Param(f"best.{k}", str(v)) for k, v in best["params"].items()])
        client.log_metric(parent_run_id, f"best/{objectives[0]}", best["value"])
        tags.update(best_trial=str(best["trial"]), best_run_id=str(best["mlflow_run_id"]))
        log.info("Best trial %d: %s = %.4f  %s", best["trial"], objectives[0], best["value"], best["params"])
    if "pareto_front" in results:
        table = pareto_table(results["pareto_front"], objectives)
        (sweep_dir / "pareto_front.md").write_text(table)
        artifacts.append(sweep_dir / "pareto_front.md")
        client.log_metric(parent_run_id, "pareto_front_size", len(results["pareto_front"]))
        log.info("Pareto front of study '%s' (%s):\n%s", study.study_name, ", ".join(objectives), table)
    for failure in results["failures"]:
        log.warning("Trial %d failed: %s", failure["trial"], failure["reason"])
    client.log_batch(parent_run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    for artifact in artifacts:
        client.log_artifact(parent_run_id, str(artifact))
    return results


def log_best_model(client: Any, tracking_uri: str, run_id: str | None, registered_name: str | None) -> str | None:
    """The sweep's best trial's model into that trial's run (once), registered if asked: trials themselves
    do not upload their weights (``mlflow.log_model=auto``). Returns the model URI, or None."""
    import mlflow

    from mmbehave.checkpoints.mlflow_models import (
        ARTIFACT_NAME,
        has_logged_model,
        log_model,
    )

    if not run_id:
        return None
    run = client.get_run(run_id)
    checkpoint = Path(run.data.tags.get("run_dir", "")) / "checkpoints" / "best.pth"
    if has_logged_model(client, run_id):
        uri = f"runs:/{run_id}/{ARTIFACT_NAME}"
        if registered_name:
            mlflow.register_model(uri, registered_name)
        return uri
    if not checkpoint.is_file():
        log.warning("The best trial's checkpoint %s is gone: its model is not logged to MLflow.", checkpoint)
        return None
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        return log_model(checkpoint, registered_name)


def report_grid(client: Any, parent_run_id: str, objectives: list[str], children: list, sweep_dir: Path) -> None:
    """A grid sweep's end: ``sweep_results.yaml`` (every job, failures with reasons, and the test metrics' mean
    and spread over the runs that have them), logged to the parent."""
    results = grid_results(children, objectives)
    over_runs = test_over_runs(children)
    artifacts = [sweep_dir / "sweep_results.yaml"]
    if over_runs:
        results["test_over_runs"] = over_runs
        client.log_batch(parent_run_id, metrics=parent_metrics(over_runs))
        artifacts += write_over_runs(children, over_runs, sweep_dir)
        headline = over_runs.get(HEADLINE)
        if headline:
            log.info("%s over %d runs: %.4f ± %.4f (per run: %s)", HEADLINE, len(headline["values"]), headline["mean"],
                     headline["std"], ", ".join(f"{value:.3f}" for value in headline["values"]))
    OmegaConf.save(OmegaConf.create(results), artifacts[0])
    for failure in results["failures"]:
        log.warning("Job %d failed: %s", failure["job"], failure["reason"])
    for artifact in artifacts:
        client.log_artifact(parent_run_id, str(artifact))
