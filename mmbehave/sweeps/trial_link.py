"""A sweep job's own line to its Optuna trial: report each epoch, stop when the pruner says so, finish the trial.

hydra-optuna-sweeper asks Optuna for trials and tells it the final values, but never hands a trial to its job,
so no pruner can act. The job knows its trial (``SweepJob.trial_number``, from the sweep callback) and the
study's storage, which works across processes (joblib workers, SLURM or Ray jobs on a shared database):

    each epoch ─► trial.report(optimized_metric, epoch) ─► pruner says stop? ─► trial PRUNED, run KILLED
    the end    ─► trial COMPLETE with the run's values (other jobs' pruners and samplers see it at once)

The sweep's own ``tell`` comes after and leaves such a trial alone (mmbehave's sweeper, ``hydra/sweeper:
mmbehave_optuna``). Pruners: ``pruning.pruner`` none | median | hyperband.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)



class TrialPruned(Exception):
    """The study's pruner stopped this trial after ``epoch`` (0-based)."""

    def __init__(self, epoch: int, value: float) -> None:
        self.epoch, self.value = epoch, value
        super().__init__(f"pruned after epoch {epoch + 1} ({value:.4f})")


@dataclass(frozen=True)
class PruningSettings:
    pruner: Literal["none", "median", "hyperband"] = "none"
    warmup_epochs: int = 2        # epochs every trial runs before it may be stopped
    startup_trials: int = 2       # median: finished trials to compare against before pruning starts

    def build(self, num_epochs: int) -> Any:
        import optuna

        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=self.warmup_epochs)
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=max(1, self.warmup_epochs), max_resource=num_epochs)
        return optuna.pruners.NopPruner()


class TrialLink:
    """The Optuna trial ``number`` of study ``study_name`` in ``storage``, as the job's process sees it."""

    def __init__(self, storage: str, study_name: str, number: int, pruning: PruningSettings | None, num_epochs: int):
        import optuna

        self.pruning = pruning
        pruner = pruning.build(num_epochs) if pruning else optuna.pruners.NopPruner()
        self.study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
        self.number = number
        # Optuna addresses a trial by its storage id; the public API only hands one out through ask().
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        self.trial = optuna.trial.Trial(self.study, trial_id)

    def report(self, value: float, epoch: int) -> None:
        """Report an epoch's value; raise TrialPruned if the pruner says this trial cannot win."""
        if self.pruning is None or self.pruning.pruner == "none":
            return
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise TrialPruned(epoch, value)

    def prune(self) -> None:
        from optuna.trial import TrialState

        self.study.tell(self.number, state=TrialState.PRUNED, skip_if_finished=True)

    def complete(self, values: float | list[float]) -> None:
        self.study.tell(self.number, values=values, skip_if_finished=True)
