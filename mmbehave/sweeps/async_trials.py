"""Asynchronous trials: a worker that finishes a trial asks the study for the next one at once, up to n_trials.

hydra-optuna-sweeper asks for ``n_jobs`` trials, launches them as one batch and waits for all of them before it
asks again, so one slow trial idles every other worker (hydra #3091, closed as not planned). Here each of
``n_jobs`` slots launches one trial at a time through the same launcher (joblib's loky workers, submitit's jobs,
Ray tasks run the trials; this process only schedules):

    slot free ─► study.ask() ─► the trial's overrides (the sweeper's own search space) ─► launcher.launch([one job])
              ─► its value told to Optuna (unless the job already told it: COMPLETE or PRUNED) ─► slot free

Everything else is the sweeper's: the search space, the sampler (``constant_liar`` lets it sample knowing which
trials are still running), ``max_failure_rate`` (here over the last ``n_jobs`` trials to finish), the one MLflow
parent run (``sweeps.callback``), ``optimization_results.yaml``. The default launcher runs jobs in this very
process, one after another, so it gets one slot whatever ``n_jobs`` says, and runs it in this thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import optuna
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
IN_PROCESS_LAUNCHERS = ("BasicLauncher",)


def slots_for(impl) -> int:
    """Trials at once: n_jobs, or 1 under a launcher that runs jobs in the sweeping process itself, and no more
    than joblib's workers (a trial asked to wait for a worker would only blind the sampler)."""
    launcher = impl.launcher
    if type(launcher).__name__ in IN_PROCESS_LAUNCHERS:
        return 1
    slots = max(1, int(impl.n_jobs))
    workers = int(getattr(launcher, "joblib", {}).get("n_jobs") or -1)
    if type(launcher).__name__ == "JoblibLauncher" and workers > 0:
        slots = min(slots, workers)
    return slots


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
        self.asked = 0
        self.failed: list[bool] = []     # per finished trial, in the order they finished
        self.first_failure: BaseException | None = None
        # The batch sweeper judges max_failure_rate per batch of n_jobs; here over the last n_jobs finished.
        self.window = max(1, min(int(impl.n_jobs), int(impl.n_trials)))

    def run(self) -> None:
        if self.slots == 1:
            self._run_inline()
        else:
            self._run_in_slots()
        if self._too_many_failures():
            log.error("%d of the last %d finished trials failed (max_failure_rate=%s): the sweep stops.",
                      sum(self.failed[-self.window:]), self.window, self.impl.max_failure_rate)
            raise self.first_failure  # the first failed job's own exception, as the batch sweeper raises

    def _more_to_ask(self) -> bool:
        return self.asked < self.impl.n_trials and not self._too_many_failures()

    def _run_inline(self) -> None:
        """One slot: ask, run, tell, in this thread, so Ctrl-C and SIGTERM reach the job as in a batch sweep."""
        while self._more_to_ask():
            trial, overrides, job_idx = self._ask()
            try:
                outcome = self._launch(overrides, job_idx)
            except Exception as error:  # noqa: BLE001 - the launcher failed this trial; the sweep decides
                outcome = error
            self._tell(trial, outcome)

    def _run_in_slots(self) -> None:
        """n_jobs slots: each launch waits in a daemon thread (the launcher's workers run the job), so that
        Ctrl-C or SIGTERM here ends the sweep at once instead of waiting for its trials."""
        finished: queue.Queue = queue.Queue()
        running: dict[int, optuna.trial.Trial] = {}
        # Hydra's config loader is not made for threads (Ray and submitit load jobs' configs in this process).
        # Patched on its class, not the instance: launchers pickle the instance to their workers.
        loader = type(self.impl.launcher.hydra_context.config_loader)
        original_load = loader.load_sweep_config
        loader.load_sweep_config = _taking_turns(original_load)
        try:
            start_launcher(self.impl.launcher)
            while running or self._more_to_ask():
                while len(running) < self.slots and self._more_to_ask():
                    trial, overrides, job_idx = self._ask()
                    running[trial.number] = trial
                    threading.Thread(target=self._launch_into, args=(finished, trial.number, overrides, job_idx),
                                     name=f"trial-{trial.number}", daemon=True).start()
                number, outcome = _next(finished)
                self._tell(running.pop(number), outcome)
        except BaseException:
            stop_launcher_workers(self.impl.launcher)
            raise
        finally:
            loader.load_sweep_config = original_load

    def _ask(self) -> tuple[optuna.trial.Trial, list[str], int]:
        from mmbehave.sweeps.callback import trial_marks

        trial = ask_marked(self.study, trial_marks())
        distributions, fixed_params, fixed_overrides = self.space
        [overrides] = self.impl._configure_trials([trial], distributions, fixed_params, fixed_overrides)
        job_idx = self.impl.job_idx
        self.impl.job_idx += 1
        self.asked += 1
        return trial, list(overrides), job_idx

    def _launch(self, overrides: list[str], job_idx: int) -> Any:
        [ret] = self.impl.launcher.launch([overrides], initial_job_idx=job_idx)
        return ret

    def _launch_into(self, finished: queue.Queue, number: int, overrides: list[str], job_idx: int) -> None:
        try:
            finished.put((number, self._launch(overrides, job_idx)))
        except BaseException as error:  # noqa: BLE001 - handed to the scheduling thread, which tells Optuna
            finished.put((number, error))

    def _tell(self, trial: optuna.trial.Trial, outcome: Any) -> None:
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            self.study.tell(trial, values=trial_values(outcome, self.directions), skip_if_finished=True)
            self.failed.append(False)
        except Exception as error:  # noqa: BLE001 - a failed trial is the sweep's business, not its end
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            log.warning("Trial %d failed: %s", trial.number, " ".join(str(error).split())[:300])
            self.failed.append(True)
            self.first_failure = self.first_failure or error

    def _too_many_failures(self) -> bool:
        if len(self.failed) < self.window:
            return False
        return sum(self.failed[-self.window:]) / self.window > self.impl.max_failure_rate


def ask_marked(study: optuna.Study, marks: dict[str, Any]) -> optuna.trial.Trial:
    """``study.ask()``, but a new trial is created RUNNING with ``marks`` (its sweep, host, process) in one write,
    so that a sweep killed right after asking leaves a trial the next sweep can close. Trials the user enqueued
    still come first (ask takes the oldest WAITING one; the sweep's custom_search_space marks it right after).

    Not enqueue-then-ask: ask pops the oldest WAITING trial, which may be another sweep's on a shared study, and a
    sweep that popped another's left its own WAITING for good (seen with two workers on one SQLite study)."""
    if study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        return study.ask()
    template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs=marks)
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    study._thread_local.cached_all_trials = None  # as ask() does: the sampler sees every trial as of now
    return optuna.trial.Trial(study, trial_id)


def _next(finished: queue.Queue) -> tuple[int, Any]:
    while True:  # a timeout keeps the wait interruptible by Ctrl-C and SIGTERM
        try:
            return finished.get(timeout=1.0)
        except queue.Empty:
            continue


_CONFIG_LOADING = threading.Lock()


def _taking_turns(function):
    def locked(*args, **kwargs):
        with _CONFIG_LOADING:
            return function(*args, **kwargs)

    return locked


def start_launcher(launcher) -> None:
    """Ray starts in a launch if it is not running yet: two slots launching at once would both start it."""
    if type(launcher).__name__ == "RayLauncher":
        from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

        start_ray(OmegaConf.create(OmegaConf.to_container(launcher.ray_cfg.init, resolve=True)))


def stop_launcher_workers(launcher) -> None:
    """The sweep is stopping: end the joblib launcher's worker processes (their trials are closed as KILLED
    by the callback). Other launchers' jobs end with their own scheduler (submitit) or with this process (Ray)."""
    if type(launcher).__name__ != "JoblibLauncher":
        return
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=False, kill_workers=True)
    except Exception as error:  # noqa: BLE001 - best effort while stopping; the stop itself goes on
        log.warning("Could not stop the joblib workers: %s", error)


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
