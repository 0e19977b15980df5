"""What one job of a multirun knows about its sweep, inside the job's own process.

The sweep callback sets it in ``on_job_start`` (in the launching process under the default launcher, in a
worker process under joblib: the callback object travels to the worker with the job) and clears it in
``on_job_end``. ``sweeps.hooks`` hands it to the training run as hooks (child run tags, threads, its trial).
Outside a multirun ``current_sweep_job()`` is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TrialKilled(Exception):
    """A trial's worker process received SIGTERM: the trial fails, the sweep goes on."""


@dataclass
class SweepJob:
    parent_run_id: str                # the multirun's MLflow parent run
    sweep_id: str                     # readable id shared by the parent and every child
    job_num: int                      # hydra.job.num: 0, 1, ... in launch order within this multirun
    trial_number: int | None = None   # Optuna trial number (None under the basic sweeper)
    study_name: str | None = None     # Optuna study (None under the basic sweeper)
    torch_threads: int | None = None  # intra-op threads for this job when jobs run side by side
    run_id: str | None = None         # this job's own MLflow run, once started
    storage: str | None = None        # the study's storage URL: the job reaches its trial through it
    finishes_trial: bool = False      # mmbehave's sweeper: the job tells Optuna its result (or PRUNED) itself
    pruning: Any = None               # PruningSettings when the sweep prunes; None otherwise
    num_epochs: int = 0               # the job's training.num_epochs (hyperband's budget)
    objectives: tuple[str, ...] = ()  # the job's optimized_metric
    adopt_run_id: str | None = None   # a killed cross-validation's finished run of this fold: taken over, not retrained

    def trial_link(self) -> Any:
        """The job's line to its Optuna trial (``mmbehave.sweeps.trial_link``), or None if it has none."""
        if not (self.finishes_trial and self.storage and self.study_name and self.trial_number is not None):
            return None
        from mmbehave.sweeps.trial_link import TrialLink

        return TrialLink(self.storage, self.study_name, self.trial_number, self.pruning, self.num_epochs)

    @property
    def run_name(self) -> str:
        step = f"trial-{self.trial_number}" if self.trial_number is not None else f"job-{self.job_num}"
        return f"{self.sweep_id}/{step}"

    def tags(self) -> dict[str, str]:
        tags = {"mlflow.parentRunId": self.parent_run_id, "sweep_id": self.sweep_id, "sweep_job": str(self.job_num)}
        if self.trial_number is not None:
            tags["optuna_trial"] = str(self.trial_number)
        if self.study_name:
            tags["optuna_study"] = self.study_name
        if self.torch_threads:
            tags["torch_threads"] = str(self.torch_threads)
        return tags


_current: SweepJob | None = None


def current_sweep_job() -> SweepJob | None:
    return _current


def set_current_sweep_job(job: SweepJob | None) -> None:
    global _current
    _current = job
