"""Fixtures shared by the tests.

The hub is unreachable in CI; HF_HUB_OFFLINE makes any accidental hub access fail at once instead of
after ~20 s of retries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import TINY_SPLITS, compose_config

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (raw clips, metadata and processed tensors), generated once per session."""
    from mmbehave.data.synthetic.generator import ensure_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    cfg = compose_config([f"data.root={root}", *TINY_SPLITS.split()])
    ensure_synthetic_dataset(cfg.data, num_workers=2, progress=False)
    return root


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return tmp_path / "run"


@dataclass(frozen=True)
class TrainedRun:
    """A model trained by the real CLI: its checkpoint, MLflow store and run id."""

    checkpoint: Path        # checkpoints/best.pth
    tracking_uri: str       # the run's own SQLite MLflow store
    run_id: str

    @property
    def env(self) -> dict[str, str]:
        """Environment for CLI calls that should see this run's MLflow store."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri}


@pytest.fixture(scope="session")
def trained_run(synthetic_root, tmp_path_factory) -> TrainedRun:
    """One tiny model (`debug=fast`) trained once per session by `python -m mmbehave.train`, for the
    evaluate / predict / export tests."""
    from helpers import run_module

    from mmbehave.checkpoints.files import read_checkpoint

    workdir = tmp_path_factory.mktemp("trained")
    run_module("mmbehave.train", "debug=fast", f"data.root={synthetic_root}", *TINY_SPLITS.split(),
               f"hydra.run.dir={workdir / 'run'}", tmp_path=workdir)
    checkpoint = workdir / "run" / "checkpoints" / "best.pth"
    return TrainedRun(checkpoint, f"sqlite:///{workdir / 'mlflow.db'}", read_checkpoint(checkpoint)["mlflow_run_id"])


@pytest.fixture(scope="session")
def synthetic_missing_audio_root(synthetic_root, tmp_path_factory) -> Path:
    """The session's tiny dataset with a quarter of its clips written without audio (the same videos)."""
    from mmbehave.data.synthetic.generator import ensure_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic_missing_audio")
    cfg = compose_config([f"data.root={root}", "data.missing_audio=0.25", *TINY_SPLITS.split()])
    ensure_synthetic_dataset(cfg.data, num_workers=2, progress=False)
    return root
