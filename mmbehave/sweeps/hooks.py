"""A sweep's job attached to its training run through the run's hooks (``mmbehave.training.hooks``).

    run opens    ─► child of the sweep's parent run: its name, tags (parent, sweep id, trial), torch threads
    a requeue    ─► resume from the job folder's latest.pth (a SLURM job stopped and started again)
    each epoch   ─► reported to the Optuna trial; the study's pruner may stop the run (KILLED, trial PRUNED)
    run ends     ─► its value tagged on the child run and told to Optuna at once (other jobs see it)

``sweep_hooks()`` is None outside a multirun's job: the train command passes it to ``run_training``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from mmbehave.sweeps.job import SweepJob, current_sweep_job
from mmbehave.sweeps.requeue import requeued_checkpoint
from mmbehave.sweeps.trial_link import TrialLink, TrialPruned
from mmbehave.training.hooks import RunHooks, RunStop

# The tag on a sweep trial's MLflow run holding what the run returned (JSON): sweeps.study reads it to keep a
# finished trial's value when its sweep was killed before telling Optuna.
OBJECTIVE_TAG = "objective_value"

log = logging.getLogger(__name__)


class SweepHooks(RunHooks):
    part_of_sweep = True

    def __init__(self, job: SweepJob, trial: TrialLink | None, objective: str | None) -> None:
        self.job = job
        self.trial = trial          # None: the study's jobs do not finish their own trials (or no study)
        self.objective = objective  # the metric reported to the pruner (None: several objectives, no pruning)

    def torch_threads(self) -> int | None:
        return self.job.torch_threads

    def run_name(self) -> str | None:
        return self.job.run_name

    def run_tags(self) -> dict[str, str]:
        return self.job.tags()

    def resume_checkpoint(self, output_dir: Path) -> Path | None:
        return requeued_checkpoint(output_dir)

    def run_started(self, run_id: str) -> None:
        self.job.run_id = run_id

    def epoch_reported(self, epoch: int, metrics: dict[str, float]) -> RunStop | None:
        if self.trial is None or self.objective is None:
            return None
        try:
            self.trial.report(metrics[self.objective], epoch)
        except TrialPruned as pruned:
            pruner = self.trial.pruning.pruner
            return RunStop(epoch, f"Optuna's pruner stopped trial {self.job.trial_number} {pruned}: the study has "
                                  "better trials.",
                           {"pruned": "true", "pruned_at_epoch": epoch + 1,
                            "failure_reason": f"pruned by {pruner} after epoch {epoch + 1}"})
        return None

    def run_stopped(self, stop: RunStop) -> None:
        if self.trial is not None:
            self.trial.prune()  # the sweeper's tell later leaves the PRUNED trial alone

    def run_finished(self, value: float | list[float], tag_run: Callable[[dict[str, Any]], None]) -> None:
        tag_run({OBJECTIVE_TAG: json.dumps(value)})  # what the trial is worth, even if the sweep dies first
        if self.trial is not None:  # at once, so that other jobs' pruners and samplers see it
            self.trial.complete(value)


def sweep_hooks() -> SweepHooks | None:
    """This process's sweep job as run hooks (set by ``sweeps.callback`` in ``on_job_start``), or None."""
    job = current_sweep_job()
    if job is None:
        return None
    return SweepHooks(job, job.trial_link(), job.objectives[0] if len(job.objectives) == 1 else None)
