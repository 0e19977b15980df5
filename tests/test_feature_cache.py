"""Frozen encoders' features computed once and reused (``mmbehave/training/feature_cache.py``): the same metrics
as without the cache (within float16), one writer under parallel builders, reuse across runs and processes, and
the ``python -m mmbehave.cache`` command (its smoke run, through the real CLI). Training runs call
``run_training`` in this process on the composed config."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    TINY_SPLITS,
    frozen_pretrained_encoders,
    run_module,
    train_here,
    user_error,
)
from mlflow.tracking import MlflowClient

from mmbehave.checkpoints.files import read_checkpoint
from mmbehave.training.feature_cache import cached_split


@pytest.fixture(scope="module")
def frozen_weights(tmp_path_factory) -> list[str]:
    return frozen_pretrained_encoders(tmp_path_factory.mktemp("weights"))


def train(tmp_path, synthetic_root, frozen_weights, cache: str, run: str, *extra: str):
    return train_here(tmp_path, "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), *frozen_weights,
                      "training.num_epochs=3", f"training.feature_cache={cache}",
                      f"training.feature_cache_dir={tmp_path / 'cache'}", *extra, run=run)


@pytest.mark.slow
def test_training_from_the_cache_gives_the_same_metrics_and_reuses_it(tmp_path, synthetic_root, frozen_weights):
    train(tmp_path, synthetic_root, frozen_weights, "false", "plain")
    first = train(tmp_path, synthetic_root, frozen_weights, "true", "cached")
    caches = sorted((tmp_path / "cache").glob("*/*.npy"))
    assert [p.parent.name.split("-")[0] for p in caches] == ["audio", "audio", "video", "video"]
    assert {p.name for p in caches} == {"train.npy", "val.npy"} and np.load(caches[0]).dtype == np.float16
    assert "Cached video features of 40 train clips" in first.output

    plain = read_checkpoint(tmp_path / "plain" / "checkpoints" / "latest.pth")["history"]
    cached = read_checkpoint(tmp_path / "cached" / "checkpoints" / "latest.pth")["history"]
    for row_plain, row_cached in zip(plain, cached):
        for key in ("train/loss", "val/loss"):
            assert row_cached[key] == pytest.approx(row_plain[key], abs=2e-3), key  # float16 features
        assert row_cached["val/macro_f1"] == pytest.approx(row_plain["val/macro_f1"], abs=0.05)

    stamps = {p: p.stat().st_mtime_ns for p in caches}
    again = train(tmp_path, synthetic_root, frozen_weights, "auto", "again")  # another run: read, not rebuilt
    assert "Using cached video features of the train clips" in again.output
    assert {p: p.stat().st_mtime_ns for p in caches} == stamps
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("debug").experiment_id])
    by_dir = {r.data.tags["run_dir"]: r.data.params for r in runs}
    assert by_dir[str(tmp_path / "plain")]["feature_cache.video"] == "off: training.feature_cache=false"
    key = by_dir[str(tmp_path / "cached")]["feature_cache.video"]
    assert caches[2].parent.name == f"video-{key}" and by_dir[str(tmp_path / "again")]["feature_cache.video"] == key


@pytest.mark.slow
def test_auto_leaves_trained_encoders_alone_and_true_says_why_it_cannot(tmp_path, synthetic_root):
    message = user_error(lambda: train_here(tmp_path, "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
                                            "training.feature_cache=true"))
    assert "the video features cannot be cached: video_encoder is trained (freeze_backbone=false)" in message
    train_here(tmp_path, "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(), run="auto")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = [r for r in client.search_runs([client.get_experiment_by_name("debug").experiment_id])
              if r.info.status == "FINISHED"][0].data.params
    assert params["feature_cache.audio"] == "off: audio_encoder is trained (freeze_backbone=false)"


@pytest.mark.slow
def test_the_cache_command_builds_ahead_and_reports_sizes(tmp_path, synthetic_root, frozen_weights):
    result = run_module("mmbehave.cache", "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
                        *frozen_weights, f"training.feature_cache_dir={tmp_path / 'cache'}", "splits=[train,val,test]",
                        f"hydra.run.dir={tmp_path / 'run'}", tmp_path=tmp_path)
    assert "| video | test | 20 | 64 x 96 |" in result.stdout and "| audio | train | 40 |" in result.stdout
    assert len(list((tmp_path / "cache").glob("*/*.npy"))) == 6 and "MiB in" in result.stdout


def _build_slowly(folder: str, log: str) -> None:
    def build():
        with open(log, "a") as out:
            out.write("built\n")
        time.sleep(1.0)
        return np.ones((2, 3, 4), np.float16)

    tokens = cached_split(Path(folder), "train", ["a", "b"], "inputs-v1", build)
    assert tokens.row("b").shape == (3, 4)


def test_parallel_builders_write_once_and_all_read_it(tmp_path):
    folder, log = tmp_path / "video-0123456789abcdef", tmp_path / "builds.log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_build_slowly, args=(str(folder), str(log))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert log.read_text() == "built\n"
    assert not list(folder.glob(".*tmp*"))
    # Other input files (the clips were preprocessed again): rebuilt, not served stale.
    cached_split(folder, "train", ["a", "b"], "inputs-v2", lambda: np.zeros((2, 3, 4), np.float16))
    assert np.load(folder / "train.npy").sum() == 0
