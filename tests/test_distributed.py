"""Data-parallel training under torchrun, two gloo processes on the CPU: the same training as one process with
the global batch, one MLflow run and one checkpoint folder written by rank 0, and validation metrics over
the whole split. (``hardware=ddp`` is the same code with NCCL on GPUs; tests/test_cuda.py has the GPU checks.)
The two processes are a real ``torchrun`` (marked ``infra``); the one-process reference run and the refusal
outside torchrun call ``run_training`` in this process on the composed config.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from helpers import TINY_SPLITS, free_port, train_here, user_error
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

# Deterministic on purpose: no shuffling, dropout or augmentation, and no BatchNorm (VideoMAE has LayerNorm
# only; BatchNorm would see per-process batches), so two processes with batch 2 each must take exactly the
# optimizer steps one process takes with batch 4.
SAME_STEPS = ["debug=fast", *TINY_SPLITS.split(), "video_encoder=videomae_tiny", "audio_encoder=none",
              "training.shuffle=false", "training.num_epochs=2", "training.limit_train_batches=3",
              "training.limit_val_batches=null", "fusion.dropout=0", "model.head_dropout=0",
              "hardware.torch_threads=1", "print_config=false"]


def overrides(tmp_path, synthetic_root, name: str, *extra: str) -> list[str]:
    return [f"data.root={synthetic_root}", *SAME_STEPS, f"mlflow.tracking_uri=sqlite:///{tmp_path / name / 'mlflow.db'}",
            *extra]


def train_under_torchrun(tmp_path, synthetic_root, name: str, *extra: str, processes: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               f"--master_port={free_port()}", "--master_addr=127.0.0.1", "-m", "mmbehave.train",
               f"hydra.run.dir={tmp_path / name}", *overrides(tmp_path, synthetic_root, name, *extra)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.infra
def test_two_processes_train_exactly_as_one_with_the_global_batch(tmp_path, synthetic_root):
    train_here(tmp_path, *overrides(tmp_path, synthetic_root, "single", "training.batch_size=4"), run="single")
    ddp = train_under_torchrun(tmp_path, synthetic_root, "ddp", "hardware=ddp_cpu", "training.batch_size=2",
                               processes=2)
    assert "Distributed training: 2 processes (gloo)" in ddp.stdout + ddp.stderr

    single = torch.load(tmp_path / "single" / "checkpoints" / "latest.pth", weights_only=True)
    both = torch.load(tmp_path / "ddp" / "checkpoints" / "latest.pth", weights_only=True)
    # The same steps: the weights agree to float noise. (Adam rescales a near-zero gradient, such as some
    # attention biases', to a full step, so summation-order noise there moves single weights by ~1e-4; the
    # parameter vector as a whole agrees to ~1e-5, measured 0.5-1.0e-5 here.)
    keys = [key for key, value in single["model"].items() if value.is_floating_point()]
    one, two = (torch.cat([state["model"][key].flatten() for key in keys]) for state in (single, both))
    assert ((two - one).norm() / one.norm()).item() < 1e-4
    # Validation over the whole split, not one process's half: the same numbers as the single process.
    for one, two in zip(single["history"], both["history"]):
        assert two["val/macro_f1"] == pytest.approx(one["val/macro_f1"])
        assert two["val/loss"] == pytest.approx(one["val/loss"], rel=1e-4)
        assert two["train/loss"] == pytest.approx(one["train/loss"], rel=1e-4)

    # Rank 0 wrote the one run: one MLflow run with each epoch once, one checkpoint folder, one log.
    client = MlflowClient(f"sqlite:///{tmp_path / 'ddp' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "val/macro_f1")) == [0, 1]
    assert runs[0].data.params["hardware.distributed"] == "True" and runs[0].data.tags["world_size"] == "2"
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == ["best.pth", "latest.pth"]


def test_distributed_outside_torchrun_is_one_line_saying_how_to_start_it(tmp_path, synthetic_root, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    message = user_error(lambda: train_here(tmp_path, "hardware=ddp_cpu", f"data.root={synthetic_root}",
                                            *TINY_SPLITS.split(), "debug=fast"))  # exit 2 on the command line
    assert "hardware.distributed=true runs one process per device under torchrun" in message
    assert "torchrun --nproc_per_node=<N> -m mmbehave.train hardware=ddp" in message
