"""Sweeps on a cluster scheduler through hydra-submitit-launcher, run here with submitit's local executor
(``hydra/launcher=submitit_local``: the same job pickling, separate job processes, signals and requeueing as on
SLURM, without SLURM; marked ``infra``). ``hydra/launcher=slurm`` composes the same launcher for a real cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import TINY_SPLITS, compose_with_hydra
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow
pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the slurm extra: pip install -e '.[slurm]'")


def start_sweep(tmp_path: Path, synthetic_root: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "mmbehave.train", "hparams_search=mbt", "debug=fast", "hydra/launcher=submitit_local",
               f"data.root={synthetic_root}", *TINY_SPLITS.split(), "training.limit_val_batches=1", "print_config=false",
               f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
               f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", *overrides]
    log = open(tmp_path / "sweep.log", "w")
    return subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def finish(sweep: subprocess.Popen, tmp_path: Path) -> str:
    assert sweep.wait(timeout=600) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    return (tmp_path / "sweep.log").read_text()


def sweep_runs(tmp_path: Path) -> tuple[MlflowClient, list, list]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    return client, [r for r in runs if "mlflow.parentRunId" not in r.data.tags], \
        [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.infra
def test_submitit_trials_are_children_of_one_parent_run_and_resume_when_preempted(tmp_path, synthetic_root):
    # One 2-trial sweep shows both: each submitit job is a trial of the parent run, and pre-empted jobs carry on.
    sweep = start_sweep(tmp_path, synthetic_root, "training.limit_train_batches=2", "training.num_epochs=8",
                        "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2")
    latest = [tmp_path / "sweep" / str(job) / "checkpoints" / "latest.pth" for job in (0, 1)]
    deadline = time.time() + 300
    while not all(path.is_file() for path in latest):
        assert time.time() < deadline and sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
        time.sleep(0.5)
    # SLURM warns a job it is about to pre-empt with USR2 (submitit's default); the jobs are the submitit processes.
    jobs = subprocess.run(["pgrep", "-f", f"submitit.core._submit {tmp_path}"], capture_output=True, text=True).stdout.split()
    assert len(jobs) == 2, f"expected two submitit job processes, found {jobs}"
    for job in jobs:
        os.kill(int(job), signal.SIGUSR2)
    finish(sweep, tmp_path)

    logs = ["".join(path.read_text() for path in sorted(folder.glob("*_log.*")))  # per job: stdout and stderr
            for folder in (tmp_path / "sweep" / ".submitit").iterdir() if any(folder.glob("*_log.*"))]
    assert sum("Requeued job: resuming from" in log for log in logs) == 2, "\n".join(logs)[-3000:]
    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 2, "a requeued job opened a second run"
    assert parents[0].data.tags["launcher"] == "LocalLauncher"
    trials = optuna.load_study(study_name="mbt", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    by_trial = {int(run.data.tags["optuna_trial"]): run for run in children}
    assert sorted(by_trial) == [0, 1]
    for trial in trials:
        run = by_trial[trial.number]
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        history = client.get_metric_history(run.info.run_id, "val/macro_f1")
        assert sorted(m.step for m in history) == list(range(8)), "epochs lost or trained twice"
        assert trial.value == pytest.approx(max(m.value for m in history))  # the best epoch of both starts
    for log in logs:
        resumed_at = int(log.split("at epoch ")[1].split()[0])
        assert 1 < resumed_at <= 8  # it carried on, it did not start again
    # Each trial ran as a submitit job of its own (its pickled call, logs and result in .submitit/<job id>/).
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 2


def test_the_slurm_launcher_composes_with_its_placeholders():
    launcher = compose_with_hydra("hparams_search=mbt", "hydra/launcher=slurm", "hydra.launcher.partition=gpu").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.gpus_per_node == 1 and launcher.max_num_timeout > 0
