"""How soon a sweep finds a good configuration: the same ``hparams_search=mbt`` study (same sampler seed, same
number of trials and epochs) under each way of running it, one after another in one run.

    basic         Hydra's basic launcher: one trial at a time, all cores to it
    batch         two joblib workers, hydra-optuna-sweeper's batches (each waits for its slowest trial)
    async         two joblib workers, each asking the study for the next trial as soon as it is free
    async_pruned  async, and the median pruner stops trials that are behind after the warm-up epochs

From Optuna's clock (first trial started → the completion that first reached it): the time to reach
``benchmark.good_value`` of the objective, the time to reach the best value of the unpruned asynchronous sweep,
and the whole sweep. Pruning pays if the pruned sweep reaches that best value in at most 60% of the unpruned
sweep's wall time (the ratio). ``benchmark.good_modes`` runs a subset (async and async_pruned: the pruning
question alone), ``benchmark.good_pruning`` sets the pruner. ``learning_curves.png`` (into
``benchmark.output_dir``) draws every trial's val/macro_f1 per epoch, unpruned beside pruned: whether curves
separate early is what decides if pruning can pay.
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
    "async_pruned": [*WORKERS, "sweep.schedule=async"],  # + benchmark.good_pruning
}


def time_to_good(cfg: DictConfig, overrides: list[str], work: Path) -> dict:
    import optuna

    bench = cfg.benchmark
    modes = [mode for mode in MODES if mode in bench.good_modes]
    if not {"async", "async_pruned"} <= set(modes):
        from mmbehave.core.errors import ConfigError

        raise ConfigError(f"benchmark.good_modes={list(bench.good_modes)} must hold async and async_pruned (the "
                          f"unpruned best and the pruned sweep are what the row compares); others: basic, batch")
    results: dict = {"trials": int(bench.good_trials), "epochs": int(bench.good_epochs), "value": float(bench.good_value),
                     "modes": modes, "pruning": list(bench.good_pruning)}
    studies = {}
    for mode in modes:
        extra = [*MODES[mode], *(bench.good_pruning if mode == "async_pruned" else [])]
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
    figure = learning_curves({mode: work / mode / "mlflow.db" for mode in ("async", "async_pruned")}, unpruned_best,
                             Path(bench.output_dir) / "learning_curves.png")
    results["learning_curves"] = str(figure)
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


def trial_curves(store: Path) -> list[tuple[int, list[int], list[float], bool]]:
    """Per Optuna trial of a sweep's MLflow store, in trial order: (trial, epochs from 1, val/macro_f1, pruned)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("benchmark").experiment_id], "tags.optuna_trial != ''")
    curves = []
    for run in sorted(runs, key=lambda r: int(r.data.tags["optuna_trial"])):
        history = sorted(client.get_metric_history(run.info.run_id, "val/macro_f1"), key=lambda m: m.step)
        if history:
            curves.append((int(run.data.tags["optuna_trial"]), [m.step + 1 for m in history],
                           [m.value for m in history], run.data.tags.get("pruned") == "true"))
    return curves


def learning_curves(stores: dict[str, Path], unpruned_best: float, path: Path) -> Path:
    """Every trial's val/macro_f1 per epoch, a panel per sweep; a pruned trial's curve ends in a cross."""
    from mmbehave.core.figures import plt, save_figure

    figure, axes = plt.subplots(1, len(stores), figsize=(5.2 * len(stores), 3.6), sharey=True, squeeze=False)
    for axis, (mode, store) in zip(axes[0], stores.items()):
        for _, epochs, values, pruned in trial_curves(store):
            line, = axis.plot(epochs, values, alpha=0.45 if pruned else 0.9, linewidth=1.2)
            if pruned:
                axis.plot(epochs[-1], values[-1], "x", color=line.get_color(), markersize=8)
        axis.axhline(unpruned_best, color="black", linestyle="--", linewidth=0.8, label=f"unpruned best {unpruned_best:.3f}")
        axis.set(title=f"{mode.replace('_', ' + ')}: one line per trial (x: pruned)", xlabel="epoch")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("val/macro_f1")
    axes[0][0].legend(loc="lower right")
    return save_figure(figure, path)
