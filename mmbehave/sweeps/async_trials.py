"""Asynchronous trials: a worker that finishes a trial asks the study for the next one at once, up to n_trials.

hydra-optuna-sweeper asks for ``n_jobs`` trials, launches them as one batch and waits for all of them before it
asks again, so one slow trial idles every other worker (hydra #3091, closed as not planned). Here each of
``n_jobs`` slots launches one trial at a time through the same launcher (joblib's loky workers, submitit's jobs,
Ray tasks run the trials; this process only schedules):

    slot free ─► study.ask() ─► the trial's overrides (the sweeper's own search space) ─► launcher.launch([one job])
              ─► its value told to Optuna (unless the job already told it: COMPLETE or PRUNED) ─► slot free

Everything else is the sweeper's: the search space, the sampler (``constant_liar`` lets it sample knowing which
trials are still running), ``max_failure_rate`` (here over the trials finished so far, once every slot has had
one), the one MLflow parent run (``sweeps.callback``), ``optimization_results.yaml``. The default launcher runs
jobs in this very process, one after another, so it gets one slot whatever ``n_jobs`` says.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import optuna
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
IN_PROCESS_LAUNCHERS = ("BasicLauncher",)


def slots_for(impl) -> int:
    """Trials at once: n_jobs, or 1 under a launcher that runs jobs in the sweeping process itself."""
    if type(impl.launcher).__name__ in IN_PROCESS_LAUNCHERS:
        return 1
    return max(1, int(impl.n_jobs))


def trial_values(ret: Any, directions: list[str]) -> list[float]:
    """A job's return value as Optuna values (ValueError, naming it, when it is none)."""
    value = ret.return_value  # raises the job's own exception when the job failed
    values = [value] if len(directions) == 1 else list(value)
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"a trial's return value must be float-castable; got {value!r}") from None
    if len(values) != len(directions):
        raise ValueError(f"{len(values)} values for {len(directions)} objectives")
    return values


def run_async(impl, arguments: list[str]) -> None:
    """The whole sweep (``OptunaSweeperImpl`` ``impl`` after its setup), asynchronously."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    impl._process_searchspace_config()
    params = impl._parse_sweeper_params_config() + list(arguments)
    distributions, fixed_params, fixed_overrides = create_params_from_overrides(params)
    for name in fixed_params:
        distributions.pop(name, None)
    directions = impl._get_directions()
    study = optuna.create_study(study_name=impl.study_name, storage=impl.storage, sampler=impl.sampler,
                                directions=directions, load_if_exists=True)
    slots = slots_for(impl)
    log.info("Study %s (%s): %d trial(s), %d at a time, each asked when a slot frees (sweep.schedule=async)",
             study.study_name, type(impl.sampler).__name__, impl.n_trials, slots)
    scheduler = _Scheduler(impl, study, directions, distributions, fixed_params, fixed_overrides, slots)
    scheduler.run()
    save_results(impl, study, directions)


class _Scheduler:
    def __init__(self, impl, study, directions, distributions, fixed_params, fixed_overrides, slots: int) -> None:
        self.impl, self.study, self.directions = impl, study, directions
        self.space = (distributions, fixed_params, fixed_overrides)
        self.slots = slots
        self.asked = self.finished = 0
        self.failures: list[BaseException] = []
        self.returns: list[Any] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        running: dict[Future, optuna.trial.Trial] = {}
        with ThreadPoolExecutor(self.slots, thread_name_prefix="trial-slot") as pool:
            try:
                while running or (self.asked < self.impl.n_trials and not self._too_many_failures()):
                    while len(running) < self.slots and self.asked < self.impl.n_trials \
                            and not self._too_many_failures():
                        trial, overrides, job_idx = self._ask()
                        running[pool.submit(self._launch, overrides, job_idx)] = trial
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        self._tell(running.pop(future), future)
            except BaseException:
                for future in running:  # Ctrl-C / SIGTERM: the launcher's jobs are told by the callback
                    future.cancel()
                raise
        if self._too_many_failures():
            log.error("%d of %d finished trials failed (max_failure_rate=%s): the sweep stops.", len(self.failures),
                      self.finished, self.impl.max_failure_rate)
            for ret in self.returns:
                ret.return_value  # raise the first failed job's own exception, as the batch sweeper does

    def _ask(self) -> tuple[optuna.trial.Trial, list[str], int]:
        trial = self.study.ask()
        distributions, fixed_params, fixed_overrides = self.space
        [overrides] = self.impl._configure_trials([trial], distributions, fixed_params, fixed_overrides)
        job_idx = self.impl.job_idx
        self.impl.job_idx += 1
        self.asked += 1
        return trial, list(overrides), job_idx

    def _launch(self, overrides: list[str], job_idx: int) -> Any:
        [ret] = self.impl.launcher.launch([overrides], initial_job_idx=job_idx)
        return ret

    def _tell(self, trial: optuna.trial.Trial, future: Future) -> None:
        self.finished += 1
        try:
            ret = future.result()
            self.returns.append(ret)
            self.study.tell(trial, values=trial_values(ret, self.directions), skip_if_finished=True)
        except Exception as error:  # noqa: BLE001 - a failed trial is the sweep's business, not its end
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            log.warning("Trial %d failed: %s", trial.number, " ".join(str(error).split())[:300])
            self.failures.append(error)

    def _too_many_failures(self) -> bool:
        return self.finished >= self.slots and len(self.failures) / max(self.finished, 1) > self.impl.max_failure_rate


def save_results(impl, study, directions: list[str]) -> None:
    """optimization_results.yaml in the sweep folder, as the batch sweeper writes it."""
    if len(directions) < 2:
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            return
        best = study.best_trial
        results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
        log.info("Best parameters: %s; best value: %s", best.params, best.value)
    else:
        results = {"name": "optuna", "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials]}
    OmegaConf.save(OmegaConf.create(results), f"{impl.config.hydra.sweep.dir}/optimization_results.yaml")
