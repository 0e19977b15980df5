"""Batch against asynchronous trials on one sweep whose trials differ in length, in one run.

The study of each schedule is given the same trials in the same order (``enqueue_trial``): long ones
(``schedule_long_epochs``) between short ones (1 epoch), so that a batch of two often pairs a long trial with a
short one and the short one's worker then idles. Both sweeps run ``hparams_search=mbt`` on the parallel launcher
with two workers; from Optuna's clock (each job completes its own trial):

    wall      first trial asked → last trial complete
    busy      the trials' summed run time ÷ (workers × wall): the share of the workers' time spent on trials
    trials/h  trials ÷ wall
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mmbehave.perf.measurements import train_command
from mmbehave.perf.processes import run_command

SCHEDULES = ("batch", "async")


def trial_lengths(long_epochs: int, trials: int) -> list[int]:
    """Epochs per trial: every third trial long, starting with the first."""
    return [long_epochs if index % 3 == 0 else 1 for index in range(trials)]


def schedule_comparison(cfg: DictConfig, overrides: list[str], work: Path, workers: int = 2) -> dict:
    import optuna

    bench = cfg.benchmark
    lengths = trial_lengths(int(bench.schedule_long_epochs), int(bench.schedule_trials))
    results: dict = {"workers": workers, "trial_epochs": lengths}
    for schedule in SCHEDULES:
        folder = work / f"schedule_{schedule}"
        storage = f"sqlite:///{folder / 'optuna.db'}"
        folder.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(study_name="mbt", storage=storage, direction="maximize")
        for epochs in lengths:
            study.enqueue_trial({"training.num_epochs": epochs})
        run_command(train_command(
            overrides, folder, "hparams_search=mbt", f"sweep.schedule={schedule}", "hydra/launcher=parallel",
            f"hydra.launcher.n_jobs={workers}", f"hydra.sweeper.n_jobs={workers}", f"hydra.sweeper.storage={storage}",
            f"hydra.sweeper.n_trials={len(lengths)}", "pruning.pruner=none",
            f"training.num_epochs=choice(1,{int(bench.schedule_long_epochs)})"), cwd=folder)
        results[schedule] = busy_fraction(optuna.load_study(study_name="mbt", storage=storage).trials, workers)
    busy = results["async"]
    results.update(busy_s=busy["busy"] * workers * busy["wall_s"], worker_s=workers * busy["wall_s"],
                   ratio=busy["busy"])
    results["speedup"] = results["batch"]["wall_s"] / results["async"]["wall_s"]
    return results


def busy_fraction(trials, workers: int) -> dict:
    done = [t for t in trials if t.datetime_start and t.datetime_complete]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    wall = (end - start).total_seconds()
    running = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    return {"wall_s": wall, "busy": running / (workers * wall), "trials_per_hour": 3600 * len(done) / wall,
            "trials": len(done)}
