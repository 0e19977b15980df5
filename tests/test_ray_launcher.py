"""Sweeps on Ray through hydra-ray-launcher (``hydra/launcher=ray``), run here on a local Ray instance that the
launcher starts on this machine (``ray.init`` without an address): each trial is a Ray task in a worker process,
and still a child run of the sweep's one MLflow parent with its Optuna trial number. On a cluster the same
command joins it with ``hydra.launcher.ray.init.address=<head>:6379`` (or ``auto`` on a cluster node).
Marked ``infra``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from helpers import TINY_SPLITS
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.slow, pytest.mark.infra]
pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the ray extra: pip install -e '.[ray]'")


def test_a_ray_sweep_runs_its_trials_as_ray_tasks_under_one_parent_run(tmp_path, synthetic_root):
    storage, tracking = f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "mmbehave.train", "hparams_search=mbt", "debug=fast", "hydra/launcher=ray",
               "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false",
               "+hydra.launcher.ray.remote.num_cpus=1", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
               "training.limit_train_batches=1", "training.limit_val_batches=1", "hydra.sweeper.n_trials=2",
               "hydra.sweeper.n_jobs=2", f"hydra.sweeper.storage={storage}", f"mlflow.tracking_uri={tracking}",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", "print_config=false"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # sweep.schedule=async: each of the two slots launches its trial as soon as it is free.
    assert (result.stdout + result.stderr).count("Ray Launcher is launching 1 jobs") == 2

    trials = optuna.load_study(study_name="mbt", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    client = MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["launcher"] == "RayLauncher"
    assert sorted(int(c.data.tags["optuna_trial"]) for c in children) == [0, 1]
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id and c.info.status == "FINISHED"
               for c in children)
    first, second = sorted(children, key=lambda c: c.info.start_time)
    assert second.info.start_time < first.info.end_time, "the two trials did not run at the same time"
    by_trial = {int(c.data.tags["optuna_trial"]): c for c in children}
    for trial in trials:  # the value Optuna holds is the one the trial's run logged
        assert by_trial[trial.number].data.metrics["val/macro_f1"] == pytest.approx(trial.value)
