"""Sweeps on a cluster scheduler through hydra-submitit-launcher, run here with submitit's local executor
(``hydra/launcher=submitit_local``: the same job pickling, separate job processes, signals and requeueing as on
SLURM, without SLURM). ``hydra/launcher=slurm`` composes the same launcher for a real cluster.
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


def test_a_submitit_trial_is_preempted_requeued_and_resumes_from_its_last_epoch(tmp_path, synthetic_root):
    # One sweep shows both: a submitit job is a trial of the parent run, and a pre-empted job carries on.
    sweep = start_sweep(tmp_path, synthetic_root, "training.limit_train_batches=2", "training.num_epochs=8",
                        "hydra.sweeper.n_trials=1", "hydra.sweeper.n_jobs=1")
    latest = tmp_path / "sweep" / "0" / "checkpoints" / "latest.pth"
    deadline = time.time() + 300
    while not latest.is_file():
        assert time.time() < deadline and sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
        time.sleep(0.5)
    # SLURM warns a job it is about to pre-empt with USR2 (submitit's default); the job is the submitit process.
    job = subprocess.run(["pgrep", "-f", f"submitit.core._submit {tmp_path}"], capture_output=True, text=True).stdout.split()
    assert job, "no submitit job process"
    os.kill(int(job[0]), signal.SIGUSR2)
    finish(sweep, tmp_path)

    job_log = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").glob("*/*_log.*"))
    assert "Requeued job" in job_log and "Requeued job: resuming from" in job_log
    client, parents, children = sweep_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 1, "the requeued job opened a second run"
    assert parents[0].data.tags["launcher"] == "LocalLauncher"
    run = children[0]
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert run.data.tags["optuna_trial"] == "0"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/macro_f1")]
    assert sorted(steps) == list(range(8)), "epochs lost or trained twice"
    resumed_at = int(job_log.split("at epoch ")[1].split()[0])
    assert 1 < resumed_at <= 8  # it carried on, it did not start again
    # The trial ran as a submitit job of its own (its pickled call, logs and result in .submitit/<job id>/).
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 1
    trial = optuna.load_study(study_name="mbt", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials[0]
    history = client.get_metric_history(run.info.run_id, "val/macro_f1")
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == pytest.approx(max(m.value for m in history))  # the best epoch of both starts


def test_the_slurm_launcher_composes_with_its_placeholders():
    launcher = compose_with_hydra("hparams_search=mbt", "hydra/launcher=slurm", "hydra.launcher.partition=gpu").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.gpus_per_node == 1 and launcher.max_num_timeout > 0
