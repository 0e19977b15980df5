"""mmbehave's Optuna sweeper for Hydra: hydra-optuna-sweeper's ``OptunaSweeper``, unchanged but for one thing.

A trial may already be finished when the sweeper comes to tell Optuna its result, because mmbehave's training
job finished it itself: PRUNED when the study's pruner stopped it early, or COMPLETE as soon as it ended (so
that pruners and samplers in other processes see it before the whole batch is done). The stock sweeper fails
on such a trial; this one leaves it as the job left it. Select it with ``hydra/sweeper: mmbehave_optuna``
(``conf/hydra/sweeper/mmbehave_optuna.yaml``; the ``hparams_search`` presets do). Hydra finds the class
through its plugin discovery, as the ``hydra.plugins`` entry point pyproject.toml declares. The job's side:
``mmbehave/sweeps/trial_link.py``.

``sweep.schedule`` (conf/train.yaml) picks how trials are launched: ``async`` (the default: each worker asks for
the next trial as soon as its last one ends, ``sweeps/async_trials.py``) or ``batch`` (the stock sweeper's
batches of ``n_jobs``, each waiting for its slowest trial).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import OmegaConf


class _OptunaTellingOnce:
    """The ``optuna`` module as the stock sweeper sees it, except that its studies' ``tell`` passes
    ``skip_if_finished=True``: a trial the job already told (PRUNED or COMPLETE) stays as the job left it."""

    def __init__(self, optuna_module: Any) -> None:
        self._optuna = optuna_module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._optuna, name)

    def create_study(self, *args: Any, **kwargs: Any) -> Any:
        study = self._optuna.create_study(*args, **kwargs)
        study.tell = functools.partial(study.tell, skip_if_finished=True)
        return study


@contextlib.contextmanager
def jobs_may_finish_trials() -> Iterator[None]:
    from hydra_plugins.hydra_optuna_sweeper import _impl

    original = _impl.optuna
    _impl.optuna = _OptunaTellingOnce(original)
    try:
        yield
    finally:
        _impl.optuna = original


SCHEDULES = ("async", "batch")


class MMBehaveOptunaSweeper(OptunaSweeper):
    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
        schedule = str(OmegaConf.select(impl.config, "sweep.schedule", default="async"))
        if schedule not in SCHEDULES:
            from mmbehave.core.errors import ConfigError

            raise ConfigError(f"sweep.schedule={schedule}: use async (a freed worker starts the next trial at once) "
                              "or batch (hydra-optuna-sweeper's batches of n_jobs).")
        grid = isinstance(impl.sampler, functools.partial)  # GridSampler: the batch sweeper sizes the grid
        if schedule == "async" and not grid:
            from mmbehave.sweeps.async_trials import run_async

            return run_async(impl, arguments)
        with jobs_may_finish_trials():
            return super().sweep(arguments)
