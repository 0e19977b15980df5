"""A failed command never damages earlier results: refused resumes leave the run as it was, killed saves leave
no litter, a full disk is one line, every epoch is in MLflow exactly once, SIGTERM ends a run cleanly, and a
killed sweep keeps the values of the trials that finished.

Runs that are killed, signalled or swept are real processes (the CLI); the runs around them (a resume, a refused
resume) call ``run_training`` in this process on the composed config."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from helpers import TINY_SPLITS, fresh_store, run_module, train_here, user_error
from mlflow.tracking import MlflowClient

from mmbehave.checkpoints.files import read_checkpoint, save_checkpoint
from mmbehave.core.errors import StorageError
from mmbehave.tracking.store import prepare_store

pytestmark = pytest.mark.slow
QUICK = ["training.limit_train_batches=1", "training.limit_val_batches=1"]


def train_command(tmp_path: Path, synthetic_root: Path, *overrides: str, run: str = "run") -> list[str]:
    return [sys.executable, "-m", "mmbehave.train", f"hydra.run.dir={tmp_path / run}",
            *train_overrides(synthetic_root, *overrides)]


def train_overrides(synthetic_root: Path, *overrides: str) -> list[str]:
    return ["debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), *QUICK, *overrides]


def train(tmp_path, synthetic_root, *overrides, run="run"):
    """A quick run in this process: its folder tmp_path/<run>, its store tmp_path/mlflow.db."""
    return train_here(tmp_path, *train_overrides(synthetic_root, *overrides), run=run)


def the_run(tmp_path: Path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    assert len(runs) == 1, f"expected one MLflow run, found {len(runs)}"
    return client, runs[0]


def metric_steps(client, run_id: str, key: str = "val/macro_f1") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def start(command: list[str], tmp_path: Path) -> subprocess.Popen:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Tables first: the test's own MlflowClient would otherwise migrate the new database while the child does.
    fresh_store(tmp_path / "mlflow.db", cwd=tmp_path)
    prepare_store(tracking_uri)
    # SIGINT/SIGTERM back to their defaults in the child, however pytest itself was started.
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), start_new_session=True)


def wait_for(condition, process: subprocess.Popen, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out (exit {process.poll()}): "
                         f"{process.stderr.read()[-3000:] if process.poll() is not None else ''}")


def test_a_resume_that_cannot_continue_is_refused_before_touching_the_run(tmp_path, synthetic_root):
    train(tmp_path, synthetic_root, "training.num_epochs=2")
    run_dir = tmp_path / "run"
    client, before = the_run(tmp_path)
    files_before = sorted(p.name for p in run_dir.iterdir())
    message = user_error(lambda: train(tmp_path, synthetic_root, "training.num_epochs=3", "fusion.num_layers=3",
                                       "fusion.num_bottlenecks=2", f"resume={run_dir / 'checkpoints' / 'latest.pth'}",
                                       run="resumed"))  # a UserError: one line, exit 2 on the command line
    assert "this config cannot continue that run" in message
    assert "model.fusion.num_layers: 2 -> 3" in message and "model.fusion.num_bottlenecks: 4 -> 2" in message
    _, after = the_run(tmp_path)
    assert after.info.status == "FINISHED" and "failure_reason" not in after.data.tags
    assert sorted(p.name for p in run_dir.iterdir()) == files_before, "the refused resume wrote into the run folder"
    assert metric_steps(client, after.info.run_id) == [0, 1]


def test_resuming_from_an_older_checkpoint_than_mlflow_shows_is_refused(tmp_path, synthetic_root):
    train(tmp_path, synthetic_root, "training.num_epochs=2", "training.stop_after_epoch=1")
    latest = tmp_path / "run" / "checkpoints" / "latest.pth"
    old = tmp_path / "epoch1.pth"
    old.write_bytes(latest.read_bytes())  # a copy kept from after the first epoch
    train(tmp_path, synthetic_root, "training.num_epochs=2", f"resume={latest}", run="resumed")
    message = user_error(lambda: train(tmp_path, synthetic_root, "training.num_epochs=3", f"resume={old}", run="again"))
    assert "already has epochs up to 2; resume from the run's checkpoints/latest.pth" in message
    client, run = the_run(tmp_path)
    assert run.info.status == "FINISHED" and metric_steps(client, run.info.run_id) == [0, 1]
    # best.pth is for inference: resume says so rather than "not a checkpoint".
    best = user_error(lambda: train(tmp_path, synthetic_root, "training.num_epochs=3",
                                    f"resume={latest.parent / 'best.pth'}", run="best"))
    assert "is a model checkpoint (a best.pth or an export)" in best


def test_killed_mid_run_then_resumed_every_epoch_is_in_mlflow_once_and_no_temp_file_stays(tmp_path, synthetic_root):
    command = train_command(tmp_path, synthetic_root, "training.num_epochs=40")
    process = start(command, tmp_path)
    latest = tmp_path / "run" / "checkpoints" / "latest.pth"
    wait_for(lambda: latest.exists() and read_checkpoint(latest)["epoch"] >= 2, process)
    os.killpg(process.pid, signal.SIGKILL)  # no handler runs: the MLflow run stays RUNNING, a save may be cut
    process.wait()
    stale = latest.parent / ".latest.pth.cutoff.tmp.pth"
    stale.write_bytes(b"half a checkpoint")  # what a kill during torch.save leaves
    resumed = train(tmp_path, synthetic_root, "training.num_epochs=6", f"resume={latest}", run="resumed")
    assert "Traceback" not in resumed.output
    assert not stale.exists()
    client, run = the_run(tmp_path)
    history = read_checkpoint(latest)["history"]
    assert [row["epoch"] for row in history] == list(range(6))
    for key in ("train/loss", "val/macro_f1"):
        logged = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in logged) == list(range(6)), key  # each epoch exactly once
        assert {m.step: m.value for m in logged} == pytest.approx({row["epoch"]: row[key] for row in history})


def test_sigterm_ends_the_run_killed_keeps_the_checkpoint_and_says_how_to_resume(tmp_path, synthetic_root):
    process = start(train_command(tmp_path, synthetic_root, "training.num_epochs=200"), tmp_path)
    latest = tmp_path / "run" / "checkpoints" / "latest.pth"
    wait_for(latest.exists, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert f"continue with: python -m mmbehave.train resume={latest}" in stderr and "Traceback" not in stderr
    _, run = the_run(tmp_path)
    assert run.info.status == "KILLED" and run.data.tags["killed_by"] == "SIGTERM"
    read_checkpoint(latest)  # a whole file


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a real file system that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_naming_the_path_and_leaves_no_temp_file(small_disk):
    # Known to be too big: refused before writing anything.
    with pytest.raises(StorageError, match=r"latest.pth: the disk is full .* needs about 8.0 MiB") as info:
        save_checkpoint({"model": {"w": torch.zeros(2 << 20)}}, small_disk / "checkpoints" / "latest.pth")
    assert "\n" not in str(info.value)
    # Looks small (a few KiB of tensors) but its file is far larger (thousands of entries): fails while writing.
    many = {"model": {f"t{i}": torch.zeros(1) for i in range(40000)}}
    with pytest.raises(StorageError, match="the disk is full"):
        save_checkpoint(many, small_disk / "checkpoints" / "latest.pth")
    assert list((small_disk / "checkpoints").iterdir()) == [], "a temp file was left on the full disk"


@pytest.mark.parametrize("schedule", ["batch", "async"])
def test_a_killed_sweep_keeps_the_values_of_its_finished_trials(tmp_path, synthetic_root, schedule):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    command = [sys.executable, "-m", "mmbehave.train", "hparams_search=mbt", "debug=fast", f"data.root={synthetic_root}",
               f"sweep.schedule={schedule}",
               *TINY_SPLITS.split(), *QUICK, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=4",
               "hydra.sweeper.n_jobs=4", "fusion.num_heads=2", f"hydra.sweep.dir={tmp_path / 'first'}"]
    process = start(command, tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")

    def two_trials_finished_and_a_third_started() -> bool:
        # Polled through a short read-only connection, and a read that fails while the sweep writes is only "not
        # yet"; the reads after the kill and the second sweep on the same store are what must find it intact.
        try:
            with contextlib.closing(sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True)) as db:
                statuses = [status for (status,) in db.execute(
                    "SELECT runs.status FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
                    "WHERE tags.key = 'optuna_trial'")]
        except sqlite3.DatabaseError:
            return False
        return statuses.count("FINISHED") >= 2 and "RUNNING" in statuses

    wait_for(two_trials_finished_and_a_third_started, process, timeout=240)
    # batch: mid-batch, Optuna was told nothing yet; async: the first two are told, the third is running.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id], "attributes.status = 'FINISHED'")
    finished = {int(r.data.tags["optuna_trial"]): r.data.metrics["val/macro_f1"] for r in runs if "optuna_trial" in r.data.tags}
    # Every trial a run finished is in the study as the kill left it (the kill loses nothing already written).
    killed = {t.number: t.state.name for t in optuna.load_study(study_name="mbt", storage=storage).trials}
    assert set(finished) <= set(killed), f"finished runs of trials {sorted(finished)}; the study after the kill: {killed}"

    # The next sweep on the study cleans up after the killed one.
    second = run_module("mmbehave.train", *command[3:-2], "hydra.sweeper.n_trials=1", "hydra.sweeper.n_jobs=1",
                        f"hydra.sweep.dir={tmp_path / 'second'}", tmp_path=tmp_path)
    trials = optuna.load_study(study_name="mbt", storage=storage).trials
    by_number = {t.number: t for t in trials}
    seen = (f"finished runs {finished}; after the kill {killed}; after the next sweep "
            f"{ {t.number: t.state.name for t in trials} }; its log: {second.stderr[-2000:]}")
    for number, value in finished.items():
        assert number in by_number and by_number[number].state == optuna.trial.TrialState.COMPLETE, seen
        assert by_number[number].value == pytest.approx(value), seen
    first_sweep = {t.user_attrs["sweep_id"] for t in trials if t.number in finished}
    others = [t for t in trials if t.user_attrs.get("sweep_id") in first_sweep and t.number not in finished]
    assert others and all(t.state == optuna.trial.TrialState.FAIL for t in others), seen
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]


def test_a_stop_signal_inside_a_held_block_is_raised_when_the_block_ends():
    from mmbehave.core.signals import RunInterrupted, signals_held, stop_on_signals

    finished = []
    with pytest.raises(RunInterrupted) as stopped, stop_on_signals(lambda: "continue with: resume=x"):
        with signals_held():  # an MLflow write: the signal waits for it
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            finished.append("write")
        finished.append("after")  # not reached: raised as the held block ended
    assert finished == ["write"] and stopped.value.signal_name == "SIGTERM" and "resume=x" in str(stopped.value)


def test_a_pretraining_killed_outright_continues_from_its_last_epoch_each_epoch_in_mlflow_once(tmp_path,
                                                                                              synthetic_root):
    overrides = [f"data.root={synthetic_root}", *TINY_SPLITS.split(), "pretrain.batch_size=8", "audio_encoder=none",
                 "pretrain.max_clips=16", f"pretrain.cache_dir={tmp_path / 'clips'}"]
    process = start([sys.executable, "-m", "mmbehave.pretrain", f"hydra.run.dir={tmp_path / 'run'}", *overrides,
                     "pretrain.num_epochs=100"], tmp_path)
    latest = tmp_path / "run" / "checkpoints" / "latest.pth"
    wait_for(latest.exists, process)
    os.killpg(process.pid, signal.SIGKILL)  # no handler runs: the MLflow run stays RUNNING
    process.wait()
    killed_at = torch.load(latest, weights_only=True)["epoch"]
    from helpers import run_here

    run_here("pretrain", *overrides, f"pretrain.num_epochs={killed_at + 2}", f"resume={latest}",
             tmp_path=tmp_path, run="resumed")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "pretrain/masked_loss"))
    assert steps == list(range(killed_at + 2))                      # the same run, every epoch exactly once
    assert run.info.status == "FINISHED"
    assert (tmp_path / "run" / "pretrained" / "video" / "model.safetensors").is_file()  # written into the run's folder
