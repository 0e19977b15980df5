"""The debug family and the run-level switches it is made of: overfit drives the training loss to ~0, profile
writes a trace, early stopping stops (``run_training`` in this process on the composed config), and a sweep
preset starts a sweep by itself (the real CLI: that is the command line's doing)."""

from __future__ import annotations

import json

import pytest
from helpers import TINY_SPLITS, run_module, train_here
from mlflow.tracking import MlflowClient

from mmbehave.checkpoints.files import read_checkpoint
from mmbehave.training.monitor import Monitor

pytestmark = pytest.mark.slow


def train(tmp_path, synthetic_root, *overrides):
    """One run on the tiny dataset, in this process: its folder tmp_path/run, its store tmp_path/mlflow.db."""
    return train_here(tmp_path, f"data.root={synthetic_root}", *TINY_SPLITS.split(), *overrides)


def debug_runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("debug").experiment_id])


def test_overfit_memorises_two_batches_and_logs_to_the_debug_experiment(tmp_path, synthetic_root):
    train(tmp_path, synthetic_root, "debug=overfit", "training.batch_size=4")  # 2 batches of 4: half the time
    history = read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pth")["history"]
    assert len(history) == 30
    assert history[-1]["train/loss"] < 0.1, [round(row["train/loss"], 3) for row in history]
    assert history[-1]["val/macro_f1"] == pytest.approx(1.0)  # validated on the same clips
    _, runs = debug_runs(tmp_path)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"


def test_profile_writes_a_trace_of_a_few_steps_and_logs_it(tmp_path, synthetic_root):
    train(tmp_path, synthetic_root, "debug=profile", "training.batch_size=4")
    profile = tmp_path / "run" / "profile"
    trace = json.loads((profile / "trace.json").read_text())
    assert trace["traceEvents"], "empty trace"
    assert "Self CPU" in (profile / "summary.txt").read_text()
    client, runs = debug_runs(tmp_path)
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "profile")} == {"profile/trace.json",
                                                                                      "profile/summary.txt"}


def test_early_stopping_ends_the_run_when_the_monitor_stalls(tmp_path, synthetic_root):
    # A monitor that cannot improve: the learning rate only decays after epoch 1 (cosine, no warm-up).
    train(tmp_path, synthetic_root, "debug=fast", "training.num_epochs=6", "training.monitor=train/lr",
          "training.monitor_mode=max", "training.early_stopping_patience=2", "training.limit_train_batches=1",
          "training.limit_val_batches=1")
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pth")
    assert checkpoint["epoch"] == 2 and checkpoint["monitor"] == {"metric": "train/lr", "mode": "max"}
    _, runs = debug_runs(tmp_path)
    assert runs[0].data.tags["early_stopped_at_epoch"] == "3"


def test_a_sweep_preset_starts_a_sweep_without_multirun(tmp_path, synthetic_root):
    run_module("mmbehave.train", f"data.root={synthetic_root}", *TINY_SPLITS.split(), f"hydra.run.dir={tmp_path / 'run'}",
               f"hydra.sweep.dir={tmp_path / 'multirun'}", "hparams_search=mbt", "debug=fast", "hydra.sweeper.n_trials=1",
               "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage=sqlite:///{tmp_path / 'optuna.db'}",
               "training.limit_train_batches=1", "training.limit_val_batches=1", tmp_path=tmp_path)
    assert (tmp_path / "multirun" / "optimization_results.yaml").is_file()
    _, runs = debug_runs(tmp_path)
    assert len(runs) == 2  # the sweep's parent run and its one trial


def test_the_monitor_counts_epochs_without_improvement():
    monitor = Monitor("val/loss", "min", patience=2)
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.85]):
        monitor.update(epoch, {"val/loss": loss})
    assert (monitor.best, monitor.best_epoch) == (0.8, 1)
    assert monitor.stalled(3) and not monitor.stalled(2)
    resumed = Monitor.resumed("val/loss", "min", 2, monitor.history)
    assert (resumed.best, resumed.best_epoch, resumed.history) == (0.8, 1, monitor.history)
