"""Pruning inside Hydra + Optuna sweeps (``mmbehave/sweeps/trial_link.py``, ``hydra_plugins/mmbehave_optuna_sweeper``):
hopeless trials end PRUNED in Optuna and KILLED (tagged) in MLflow, the others complete, in the job's own
process or in joblib workers; multi-objective studies say they cannot prune and run unpruned.

Deterministic by config: the sweeps optimise the fusion's parameter count (``fusion/num_params``, the same every
epoch), so a 2-layer trial is worse at every epoch than the 4-layer trials that finished before it.
"""

from __future__ import annotations

import optuna
import pytest
from helpers import TINY_SPLITS, run_module
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

pytestmark = pytest.mark.slow
LAYERS = [4, 4, 2, 2]  # the order the trials run in


def pruned_sweep(tmp_path, synthetic_root, *extra: str, layers=LAYERS, preset="mbt_pruned", epochs=3):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    directions = ["maximize", "maximize"] if preset == "mbt_pareto" else ["maximize"]
    study = optuna.create_study(study_name=preset, storage=storage, directions=directions)
    for num_layers in layers:
        study.enqueue_trial({"fusion.num_layers": num_layers, "fusion.num_heads": 2, "fusion.num_bottlenecks": 2,
                             "optimizer.lr": 1e-3})
    metric = ("optimized_metric=[val/macro_f1,fusion/num_params]" if preset == "mbt_pareto"
              else "optimized_metric=fusion/num_params")
    return run_module("mmbehave.train", f"hparams_search={preset}", "debug=fast", f"data.root={synthetic_root}",
                      *TINY_SPLITS.split(), f"training.num_epochs={epochs}", "training.limit_train_batches=1",
                      "training.limit_val_batches=1", metric, "pruning.pruner=median", "pruning.warmup_epochs=1",
                      "pruning.startup_trials=1", f"hydra.sweeper.n_trials={len(layers)}",
                      f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *extra,
                      tmp_path=tmp_path), optuna.load_study(study_name=preset, storage=storage)


def runs_by_trial(tmp_path) -> dict[int, object]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    return {int(r.data.tags["optuna_trial"]): r for r in runs if "optuna_trial" in r.data.tags}


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_hopeless_trials_are_pruned_and_the_others_complete(tmp_path, synthetic_root, launcher):
    extra = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    result, study = pruned_sweep(tmp_path, synthetic_root, *extra)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    for trial in study.trials[2:]:
        assert max(trial.intermediate_values) == 1  # stopped after the warm-up epoch, step 1: not run to the end
    runs = runs_by_trial(tmp_path)
    for number in (0, 1):
        assert runs[number].info.status == "FINISHED" and "pruned" not in runs[number].data.tags
    for number in (2, 3):
        run = runs[number]
        assert run.info.status == "KILLED" and run.data.tags["pruned"] == "true"
        assert run.data.tags["pruned_at_epoch"] == "2" and "pruned by median" in run.data.tags["failure_reason"]
    assert "Pruning with median after 1 warm-up epoch(s)" in result.stdout + result.stderr


def test_a_multi_objective_study_says_it_cannot_prune_and_runs_every_trial(tmp_path, synthetic_root):
    result, study = pruned_sweep(tmp_path, synthetic_root, layers=[4, 2], preset="mbt_pareto", epochs=2)
    assert "Optuna cannot prune a multi-objective study" in result.stdout + result.stderr
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == 0 for t in study.trials)
