"""`python -m mmbehave.train` end to end, as users call it: checkpoints, the MLflow run, resume, failures.

On the session's tiny synthetic dataset, with a temp SQLite MLflow store. The first test is the command's smoke
run through the real CLI in a subprocess (what only the command line records: the Hydra overrides tag, the
working directory left alone), and Ctrl-C needs a process to interrupt; the others call ``run_training`` in this
process on the composed config.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
from helpers import TINY_SPLITS, fresh_store, run_module, train_here
from mlflow.tracking import MlflowClient

from mmbehave.checkpoints.files import read_checkpoint
from mmbehave.core.errors import DataError

pytestmark = pytest.mark.slow

EPOCH_METRICS = {"train/loss", "val/loss", "val/species_acc", "val/species_macro_f1", "val/behavior_acc",
                 "val/behavior_macro_f1", "val/macro_f1"}


def train(tmp_path: Path, synthetic_root: Path, *overrides: str, run: str = "run"):
    """A `debug=fast` run on the tiny dataset, in this process: its folder tmp_path/<run>, its store tmp_path/mlflow.db."""
    return train_here(tmp_path, "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), *overrides, run=run)


def only_run(tmp_path: Path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("debug")  # where debug=fast sends its runs
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, f"expected one MLflow run, found {len(runs)}"
    return client, runs[0]


def test_debug_fast_run_writes_checkpoints_log_and_a_complete_mlflow_run(tmp_path, synthetic_root):
    result = run_module("mmbehave.train", "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
                        f"hydra.run.dir={tmp_path / 'run'}", "fusion.num_layers=4", tmp_path=tmp_path)
    run_dir = tmp_path / "run"
    summary = result.stdout.rstrip().splitlines()[-8:]  # the command ends on what it made and what to type next
    assert summary[0] == "Training done." and summary[1].split()[:2] == ["best", "val/macro_f1"], summary
    assert f"checkpoint         {run_dir / 'checkpoints' / 'best.pth'}" in summary[2]
    assert summary[4] == "Next:" and summary[5].startswith("  python -m mmbehave.evaluate checkpoint=")
    assert summary[7] == f"  mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}"
    noise = [line for line in result.stderr.splitlines()
             if "warning" in line.lower() or "Downloading artifacts" in line]  # UserWarnings, WARNING logs, bars
    assert not noise, noise
    for name in ("latest.pth", "best.pth"):
        checkpoint = read_checkpoint(run_dir / "checkpoints" / name)  # weights_only=True inside
        assert checkpoint["classes"]["species"] == ["badger", "red_deer", "red_fox", "wild_boar"]
        assert checkpoint["classes"]["behavior"] == ["alarm", "calling", "resting", "running", "walking"]
        assert checkpoint["epoch"] == 0
    assert list(run_dir.glob("training_*.log")), "the seed's training_YYYYMMDD_HHMMSS.log is missing"
    assert not list((run_dir / "checkpoints").glob(".*tmp*")), "a temp checkpoint file was left behind"

    client, run = only_run(tmp_path)
    assert run.info.status == "FINISHED"
    assert EPOCH_METRICS <= set(run.data.metrics)
    params = run.data.params
    assert params["fusion.num_layers"] == "4"
    assert params["modalities"] == "video+audio"
    assert params["video_encoder.freeze_backbone"] == "False"
    assert int(params["num_params_trainable"]) <= int(params["num_params_total"])
    assert "hydra" not in {key.split(".")[0] for key in params}
    tags = run.data.tags
    assert tags["run_dir"] == str(run_dir)
    assert "fusion.num_layers=4" in tags["hydra_overrides"]
    assert len(tags["git_commit"]) == 40
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri()), "artifacts must sit beside the store"
    assert not (tmp_path / "mlruns").exists(), "MLflow's cwd-relative ./mlruns default was used"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "classes.json"} <= artifacts
    assert any(a.startswith("training_") and a.endswith(".log") for a in artifacts)


def test_audio_ablation_trains_a_video_only_model_and_a_weights_fallback_is_tagged(tmp_path, synthetic_root):
    # Pretrained weights that cannot be had (hub offline): the seed's fallback to a 3D CNN, recorded.
    train(tmp_path, synthetic_root, "audio_encoder=none", "video_encoder.pretrained=true",
          "video_encoder.model_name=no-such-org/no-such-videomae")
    _, run = only_run(tmp_path)
    assert run.data.params["modalities"] == "video"
    assert "no-such-org/no-such-videomae" in run.data.tags["fallback.video_encoder"]
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pth")
    assert not any(key.startswith("audio_encoder.") for key in checkpoint["model"])


def test_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path, synthetic_root):
    common = ["training.num_epochs=3", "training.limit_train_batches=4", "training.limit_val_batches=2"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir(), interrupted.mkdir()
    train(straight, synthetic_root, *common)
    train(interrupted, synthetic_root, *common, "training.stop_after_epoch=1")
    latest = interrupted / "run" / "checkpoints" / "latest.pth"
    assert read_checkpoint(latest)["epoch"] == 0
    train(interrupted, synthetic_root, *common, f"resume={latest}", run="resumed")

    expected = read_checkpoint(straight / "run" / "checkpoints" / "latest.pth")
    resumed = read_checkpoint(latest)  # a resumed run carries on in its own folder
    assert resumed["epoch"] == expected["epoch"] == 2
    for got, want in zip(resumed["history"], expected["history"]):
        results = {k: v for k, v in want.items() if not k.startswith("time/")}  # timings are not results
        assert {k: got[k] for k in results} == pytest.approx(results, abs=1e-6)
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, atol=1e-6, rtol=0)

    _, run = only_run(interrupted)  # the same MLflow run went on
    assert run.info.status == "FINISHED"
    history = MlflowClient(f"sqlite:///{interrupted / 'mlflow.db'}").get_metric_history(run.info.run_id, "val/macro_f1")
    assert sorted(m.step for m in history) == [0, 1, 2]


def test_a_run_that_fails_is_marked_failed_with_the_reason(tmp_path, synthetic_root):
    broken = tmp_path / "broken"
    (broken / "raw" / "metadata").mkdir(parents=True)
    (broken / "raw" / "metadata" / "train.csv").write_text("clip_id,species\nx,fox\n")
    # A UserError: one line, no traceback, exit 2 on the command line (test_config.py runs that CLI path).
    with pytest.raises(DataError) as info:
        train_here(tmp_path, "debug=fast", "data=processed", f"data.root={broken}")
    assert "train.csv: missing column(s) behavior" in str(info.value) and "\n" not in str(info.value)
    _, run = only_run(tmp_path)
    assert run.info.status == "FAILED"
    assert "missing column(s) behavior" in run.data.tags["failure_reason"]


def test_ctrl_c_marks_the_run_killed(tmp_path, synthetic_root):
    env_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fresh_store(tmp_path / "mlflow.db", cwd=tmp_path)
    command = [sys.executable, "-m", "mmbehave.train", "debug=fast", f"data.root={synthetic_root}",
               *TINY_SPLITS.split(), f"hydra.run.dir={tmp_path / 'run'}", "training.num_epochs=200",
               "training.limit_train_batches=1", "training.limit_val_batches=1"]
    import os

    # A shell starts background jobs with SIGINT ignored, and children inherit that: give the child the
    # default handler back, so the test behaves the same however pytest was started.
    process = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": env_uri},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    latest = tmp_path / "run" / "checkpoints" / "latest.pth"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert latest.exists(), process.stderr.read() if process.poll() is not None else "no checkpoint in 120 s"
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    mlflow.set_tracking_uri(env_uri)
    _, run = only_run(tmp_path)
    assert run.info.status == "KILLED"
    read_checkpoint(latest)  # still a whole file
