"""How soon a sweep finds a good configuration: the same ``hparams_search=mbt`` study (same sampler seed, same
number of trials and epochs) under each way of running it, one after another in one run.

    basic         Hydra's basic launcher: one trial at a time, all cores to it
    batch         two joblib workers, hydra-optuna-sweeper's batches (each waits for its slowest trial)
    async         two joblib workers, each asking the study for the next trial as soon as it is free
    async_pruned  async, and the median pruner stops trials that are behind after the warm-up epochs

From Optuna's clock (first trial started → the completion that first reached it): the time to reach
``benchmark.good_value`` of the objective, the time to reach the best value of the unpruned asynchronous sweep,
and the whole sweep. Pruning pays if the pruned sweep reaches that best value in at most 60% of the unpruned
sweep's wall time (the ratio).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mmbehave.perf.measurements import train_command
from mmbehave.perf.processes import run_command

WORKERS = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]
MODES = {
    "basic": ["hydra.sweeper.n_jobs=1", "sweep.schedule=batch"],
    "batch": [*WORKERS, "sweep.schedule=batch"],
    "async": [*WORKERS, "sweep.schedule=async"],
    "async_pruned": [*WORKERS, "sweep.schedule=async", "pruning.pruner=median", "pruning.warmup_epochs=2",
                     "pruning.startup_trials=2"],
}


def time_to_good(cfg: DictConfig, overrides: list[str], work: Path) -> dict:
    import optuna

    bench = cfg.benchmark
    results: dict = {"trials": int(bench.good_trials), "epochs": int(bench.good_epochs), "value": float(bench.good_value)}
    studies = {}
    for mode, extra in MODES.items():
        folder = work / mode
        storage = f"sqlite:///{folder / 'optuna.db'}"
        run_command(train_command(overrides, folder, "hparams_search=mbt", *extra, f"hydra.sweeper.storage={storage}",
                                  f"hydra.sweeper.n_trials={bench.good_trials}", f"training.num_epochs={bench.good_epochs}",
                                  f"seed={cfg.seed}"), cwd=folder)
        studies[mode] = optuna.load_study(study_name="mbt", storage=storage).trials
    unpruned_best = max(t.value for t in studies["async"] if t.value is not None)
    for mode, trials in studies.items():
        results[mode] = {"to_value_s": seconds_to(trials, float(bench.good_value)),
                         "to_unpruned_best_s": seconds_to(trials, unpruned_best), "wall_s": seconds_to(trials, None),
                         "best": max(t.value for t in trials if t.value is not None),
                         "pruned": sum(t.state.name == "PRUNED" for t in trials)}
    pruned_s = results["async_pruned"]["to_unpruned_best_s"]
    results.update(unpruned_best=unpruned_best, unpruned_wall_s=results["async"]["wall_s"],
                   pruned_to_best_s=pruned_s if pruned_s is not None else float("inf"))
    results["ratio"] = results["pruned_to_best_s"] / results["unpruned_wall_s"]
    return results


def seconds_to(trials, value: float | None) -> float | None:
    """Seconds from the first trial's start until a finished trial first reached ``value`` (None: until the last
    trial ended); None if none did."""
    started = min(t.datetime_start for t in trials if t.datetime_start)
    done = sorted((t for t in trials if t.datetime_complete and t.state.name == "COMPLETE"),
                  key=lambda t: t.datetime_complete)
    if value is None:
        return (max(t.datetime_complete for t in trials if t.datetime_complete) - started).total_seconds()
    reached = next((t for t in done if t.value is not None and t.value >= value), None)
    return (reached.datetime_complete - started).total_seconds() if reached else None
