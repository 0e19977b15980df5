"""One MLflow parent run per Hydra multirun, with every job's run as its child (``conf/hydra/default.yaml``).

Where each hook runs: ``on_multirun_start`` / ``on_multirun_end`` and Optuna's ``record_trial`` in the
launching process; ``on_job_start`` / ``on_job_end`` in the process that runs the job, which is a joblib
worker under ``hydra/launcher=parallel``. The callback object is pickled to the worker with each job, so
what ``on_multirun_start`` and ``record_trial`` stored on it (parent run id, job number → trial number)
arrives there without environment variables or files.

Failures: a job that raises (bad config, NaN loss) ends as a FAILED child run with ``failure_reason`` and
a failed Optuna trial, and the sweep goes on (up to ``max_failure_rate`` of a batch). SIGTERM to a joblib
worker fails that trial only; SIGTERM or Ctrl-C to the launching process stops the sweep, and its unfinished
trials and runs are closed (FAIL / KILLED). Runs and trials of a sweep killed outright are closed by the next
sweep started on the same host (``runs``, ``study``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from datetime import datetime
from typing import Any

from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, read_write

from mmbehave.core.redact import redact
from mmbehave.sweeps.job import (
    SweepJob,
    TrialKilled,
    current_sweep_job,
    set_current_sweep_job,
)
from mmbehave.sweeps.settings import SweepSettings, read_job_settings, read_sweep_settings
from mmbehave.sweeps.study import (
    HOST_ATTR,
    PARENT_RUN_ATTR,
    PID_ATTR,
    SWEEP_ID_ATTR,
    this_host,
)
from mmbehave.sweeps.trial_link import PruningSettings

log = logging.getLogger(__name__)

# The callback of the multirun running in this process, for record_trial (which Optuna's sweeper calls).
_active: "SweepCallback | None" = None


def record_trial(config: DictConfig, trial: Any) -> None:
    """``hydra.sweeper.custom_search_space`` hook, called once per asked trial in launch order: remembers
    which job runs which trial, and marks the trial with its sweep (parent run, host, process)."""
    sweep = _active
    if sweep is None or sweep.parent_run_id is None:
        return
    # A new dict, not an update: under sweep.schedule=async a slot thread may be pickling the old one.
    sweep.trial_numbers = {**sweep.trial_numbers, len(sweep.trial_numbers): trial.number}
    carried = trial.user_attrs  # async trials are created with their marks: no second write to a shared storage
    for name, value in trial_marks().items():
        if carried.get(name) != value:
            trial.set_user_attr(name, value)


def trial_marks() -> dict[str, Any]:
    """The user attributes that tie a trial to this process's sweep (empty outside a sweep)."""
    sweep = _active
    if sweep is None or sweep.parent_run_id is None:
        return {}
    return {SWEEP_ID_ATTR: sweep.sweep_id, PARENT_RUN_ATTR: sweep.parent_run_id, HOST_ATTR: this_host(),
            PID_ATTR: os.getpid()}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _fail_trial(signum, frame):
    raise TrialKilled(f"killed by {signal.Signals(signum).name}")


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.sweep_id: str | None = None
        self.tracking_uri: str | None = None
        self.experiment_id: str | None = None
        self.launcher_pid: int | None = None
        self.study_name: str | None = None
        self.storage: str | None = None
        self.trial_numbers: dict[int, int] = {}   # hydra.job.num -> Optuna trial number
        self.jobs_finish_trials = False           # mmbehave's sweeper: jobs tell Optuna their results themselves
        self.pruning: PruningSettings | None = None  # how jobs prune, when the study can be pruned
        self.finished_folds: dict[str, str] = {}  # fold folder -> its finished run in a killed cross-validation
        self._previous_sigterm: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled to joblib workers with every job; a signal handler is this process's business only.
        return {**self.__dict__, "_previous_sigterm": None}

    # ---- launching process -------------------------------------------------------------------------------
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _active
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        from mmbehave.sweeps.runs import close_orphaned_sweeps
        from mmbehave.tracking.runs import git_commit
        from mmbehave.tracking.store import ensure_experiment

        _active = self
        self.launcher_pid = os.getpid()
        settings = read_sweep_settings(config)
        tags = {"sweeper": "optuna" if settings.optuna else "basic", "launcher": settings.launcher,
                "hydra_overrides": settings.shown_overrides, "sweep_dir": str(settings.sweep_dir),
                "git_commit": git_commit(), HOST_ATTR: this_host(), PID_ATTR: str(self.launcher_pid)}
        self.tracking_uri = settings.tracking_uri
        # The experiment first: it creates a fresh store's tables under a lock, and MlflowClient opens the store
        # eagerly, so a client made before it would race another sweep starting on the same new database.
        self.experiment_id = ensure_experiment(self.tracking_uri, settings.experiment_name)
        client = MlflowClient(self.tracking_uri)
        if settings.study_name:
            self.study_name, self.storage = settings.study_name, settings.storage
            tags.update(self._prepare_study(config, settings, client))
            tags.update(self._prepare_pruning(settings))
        self.sweep_id = f"{self.study_name or settings.experiment_name}-{datetime.now():%Y%m%d-%H%M%S-%f}"
        tags["sweep_id"] = self.sweep_id
        close_orphaned_sweeps(client, self.experiment_id, closed_by=self.sweep_id)
        tags.update(self._continue_cross_validation(settings, client))
        run = client.create_run(self.experiment_id, run_name=self.sweep_id,
                                tags={k: str(v) for k, v in tags.items() if v is not None})
        self.parent_run_id = run.info.run_id
        space = settings.search_space
        if space:
            client.log_batch(self.parent_run_id, params=[Param(f"search.{k}", v[:6000]) for k, v in space.items()])
        if _main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)  # stop the sweep like Ctrl-C
        log.info("Sweep %s: MLflow parent run %s in %s", self.sweep_id, self.parent_run_id, self.tracking_uri)

    def _prepare_study(self, config: DictConfig, settings: SweepSettings, client: Any) -> dict[str, Any]:
        """Close orphaned trials (COMPLETE if their run finished, else FAIL); offset the sampler's seed by the
        trials already in the study, so that a resumed study does not replay the same random start-up suggestions.
        ``config``: only to write that seed into Hydra's own config, which builds the sampler."""
        from mmbehave.sweeps.runs import finished_trial_values
        from mmbehave.sweeps.study import close_orphaned_trials, load_study

        sweeper = config.hydra.sweeper
        study = load_study(self.storage, self.study_name)
        before = len(study.trials) if study else 0
        if study:
            close_orphaned_trials(study, finished_trial_values(client, self.experiment_id, self.study_name))
        seed = settings.sampler_seed
        if seed is not None and before:
            # The sweeper is built from this config right after this hook; jobs are composed from the hydra
            # overrides, and Hydra checks that they agree with it.
            override = f"hydra.sweeper.sampler.seed={int(seed) + before}"
            hydra_overrides = [o for o in config.hydra.overrides.hydra if not o.startswith("hydra.sweeper.sampler.seed=")]
            with read_write(config.hydra):
                sweeper.sampler.seed = int(seed) + before
                config.hydra.overrides.hydra = [*hydra_overrides, override]
            log.info("Study '%s' has %d trials: continuing it (sampler seed %s + %d).", self.study_name, before,
                     seed, before)
        return {"optuna_study": self.study_name, "optuna_storage": redact(self.storage),
                "optuna_trials_before": before, "optuna_sampler_seed": sweeper.sampler.get("seed")}

    def _continue_cross_validation(self, settings: SweepSettings, client: Any) -> dict[str, Any]:
        """``cv.resume``: the folds an unfinished earlier run of this command finished are taken over by its jobs."""
        from mmbehave.sweeps.fold_resume import finished_folds

        if not settings.cv_resume:
            return {}
        earlier, self.finished_folds = finished_folds(client, self.experiment_id, settings.shown_overrides)
        if not self.finished_folds:
            return {}
        log.info("Continuing cross-validation %s: %d fold(s) finished there and are taken over; the others train "
                 "(cv.resume=false trains every fold anew).", earlier, len(self.finished_folds))
        return {"continues": earlier}

    def _prepare_pruning(self, sweep: SweepSettings) -> dict[str, Any]:
        """Whether jobs finish their own trials (mmbehave's sweeper) and prune (``pruning.pruner``); a
        multi-objective study cannot be pruned in Optuna, so it runs unpruned, and says so now."""
        self.jobs_finish_trials = sweep.jobs_finish_trials
        settings = sweep.pruning
        if settings is None or settings.pruner == "none":
            return {"pruner": "none"}
        if not self.jobs_finish_trials:
            log.warning("pruning.pruner=%s needs mmbehave's sweeper (hydra/sweeper=mmbehave_optuna, which the "
                        "hparams_search presets select); this sweep runs unpruned.", settings.pruner)
            return {"pruner": "none"}
        if len(sweep.objectives) > 1:
            log.warning("pruning.pruner=%s is off for this sweep: Optuna cannot prune a multi-objective study "
                        "(%s); every trial runs to its last epoch.", settings.pruner, ", ".join(sweep.objectives))
            return {"pruner": "none (multi-objective)"}
        self.pruning = settings
        log.info("Pruning with %s after %d warm-up epoch(s)", settings.pruner, settings.warmup_epochs)
        return {"pruner": settings.pruner, "pruning_warmup_epochs": settings.warmup_epochs}

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _active
        _active = None
        if self._previous_sigterm is not None and _main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        if self.parent_run_id is None:
            return
        from mlflow.tracking import MlflowClient

        from mmbehave.checkpoints.mlflow_models import should_log
        from mmbehave.sweeps.results import log_best_model, report_grid, report_study
        from mmbehave.sweeps.runs import close_running, run_status
        from mmbehave.sweeps.study import fail_running_trials, load_study

        error = sys.exc_info()[1]  # set when the sweep itself raised (too many failures, Ctrl-C, SIGTERM)
        client = MlflowClient(self.tracking_uri)
        children = client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
                                      max_results=50000)
        study = load_study(self.storage, self.study_name) if self.storage else None
        if error is not None:  # what was still running will never finish
            children = close_running(client, children, error)
            if study:
                fail_running_trials(study, list(self.trial_numbers.values()))
        settings = read_sweep_settings(config)
        objectives, sweep_dir = list(settings.objectives), settings.sweep_dir
        sweep_dir.mkdir(parents=True, exist_ok=True)
        try:
            if study:
                results = report_study(client, self.parent_run_id, self.experiment_id, study, self.storage,
                                       sorted(self.trial_numbers.values()), objectives, children, sweep_dir)
                # The sweep's end logs its best model as a single run would (trials themselves did not).
                if "best_trial" in results and should_log(settings.log_model, in_sweep=False):
                    log_best_model(client, self.tracking_uri, results["best_trial"]["mlflow_run_id"],
                                   settings.registered_model_name)
            else:
                report_grid(client, self.parent_run_id, objectives, children, sweep_dir)
        finally:
            status = run_status(error)
            if error is not None:
                client.set_tag(self.parent_run_id, "failure_reason", f"{type(error).__name__}: {error}"[:5000])
            client.set_terminated(self.parent_run_id, status)
            log.info("Sweep %s %s: MLflow parent run %s", self.sweep_id, status.lower(), self.parent_run_id)

    # ---- the job's process ---------------------------------------------------------------------------------
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_run_id is None:
            return
        job = read_job_settings(config)
        set_current_sweep_job(SweepJob(self.parent_run_id, self.sweep_id, job.num, self.trial_numbers.get(job.num),
                                       self.study_name, job.torch_threads, storage=self.storage,
                                       finishes_trial=self.jobs_finish_trials, pruning=self.pruning,
                                       num_epochs=job.num_epochs, objectives=job.objectives,
                                       adopt_run_id=self.finished_folds.get(job.labels_dir)))
        if os.getpid() != self.launcher_pid and _main_thread():  # a worker: SIGTERM ends this trial only
            self._previous_sigterm = signal.signal(signal.SIGTERM, _fail_trial)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        job = current_sweep_job()
        set_current_sweep_job(None)
        if os.getpid() != self.launcher_pid and _main_thread() and self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        if job is not None and job.run_id is None and job_return.status == JobStatus.FAILED:
            # Failed before its MLflow run started (e.g. the config check): still a FAILED child, with the reason.
            from mmbehave.sweeps.runs import record_failed_job

            record_failed_job(self.tracking_uri, self.experiment_id, config, job, job_return._return_value)
