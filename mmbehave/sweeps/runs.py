"""The MLflow side of a sweep beyond what each training run logs: runs a sweep must close itself.

- a job that failed before its run started still gets a FAILED child run with its params and reason;
- a sweep that stops early (too many failures, Ctrl-C, SIGTERM) closes its children still RUNNING;
- a sweep killed outright (SIGKILL, out of memory) leaves its runs RUNNING: the next sweep started on the
  same host in the same experiment closes them as KILLED.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmbehave.core.redact import redact
from mmbehave.sweeps.job import SweepJob
from mmbehave.sweeps.study import HOST_ATTR, PID_ATTR, process_alive, this_host

log = logging.getLogger(__name__)


def run_status(error: BaseException | None) -> str:
    """MLflow's end status for a run that ended with ``error`` (None: FINISHED; Ctrl-C or SIGTERM: KILLED)."""
    if error is None:
        return "FINISHED"
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


def record_failed_job(tracking_uri: str, experiment_id: str, config: DictConfig, job: SweepJob,
                      error: BaseException) -> str:
    """A FAILED child run for a job that failed before its training run started: its params (the swept
    axes among them), its sweep tags and the reason. Returns the run id."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    from mmbehave.domain.config_checks import configured_modalities
    from mmbehave.tracking.runs import flatten_config

    task_cfg = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    client = MlflowClient(tracking_uri)
    tags = {**job.tags(), "hydra_overrides": redact(" ".join(config.hydra.overrides.task)),
            "failure_reason": redact(f"{type(error).__name__}: {error}")[:5000]}
    run = client.create_run(experiment_id, run_name=job.run_name, tags=tags)
    params = {**flatten_config(task_cfg), "modalities": "+".join(configured_modalities(task_cfg)) or "none"}
    client.log_batch(run.info.run_id, params=[Param(key, str(value)) for key, value in params.items()])
    client.set_terminated(run.info.run_id, run_status(error))
    return run.info.run_id


def close_running(client: Any, children: list, error: BaseException) -> list:
    """The sweep stopped with ``error``: its child runs still RUNNING end KILLED or FAILED. Returns the
    children as they are now."""
    closed = []
    for run in children:
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "failure_reason", f"sweep stopped: {type(error).__name__}: {error}")
            client.set_terminated(run.info.run_id, run_status(error))
            run = client.get_run(run.info.run_id)
        closed.append(run)
    return closed


def finished_trial_values(client: Any, experiment_id: str, study_name: str) -> dict[int, list[float]]:
    """{Optuna trial number: the values its training returned} for the study's runs that FINISHED (from the
    ``objective_value`` tag every sweep job sets when its training ends)."""
    import json

    from mmbehave.sweeps.hooks import OBJECTIVE_TAG

    values = {}
    for run in client.search_runs([experiment_id], f"tags.optuna_study = '{study_name}' and "
                                  "attributes.status = 'FINISHED'", max_results=50000):
        tags = run.data.tags
        if OBJECTIVE_TAG in tags and "optuna_trial" in tags:
            value = json.loads(tags[OBJECTIVE_TAG])
            values[int(tags["optuna_trial"])] = [float(v) for v in (value if isinstance(value, list) else [value])]
    return values


def close_orphaned_sweeps(client: Any, experiment_id: str, closed_by: str) -> None:
    """Parent runs of sweeps on this host whose process is gone: KILLED, with their children still RUNNING."""
    for parent in client.search_runs([experiment_id], f"tags.{HOST_ATTR} = '{this_host()}' and "
                                     "attributes.status = 'RUNNING'"):
        if process_alive(parent.data.tags.get(PID_ATTR)):
            continue
        orphans = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
                                     "and attributes.status = 'RUNNING'")
        for run in [parent, *orphans]:
            client.set_tag(run.info.run_id, "failure_reason",
                           f"the sweep process ended without closing this run (killed?); closed by sweep {closed_by}")
            client.set_terminated(run.info.run_id, "KILLED")
        log.warning("Sweep %s had been killed: its parent run %s and %d running child run(s) marked KILLED.",
                    parent.data.tags.get("sweep_id"), parent.info.run_id, len(orphans))
