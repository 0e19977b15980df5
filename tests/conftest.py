"""Fixtures shared by the tests.

The hub is unreachable in CI; HF_HUB_OFFLINE makes any accidental hub access fail at once instead of
after ~20 s of retries.

The session's datasets, trained model and empty MLflow store are built once per test run, not once per xdist
worker: the first worker to ask builds them in a folder the workers share, under a file lock; the others wait for
it and reuse it (``helpers.built_once``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import helpers
import pytest
from helpers import TINY_SPLITS, built_once, compose_config

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def share_the_cores() -> None:
    """Each xdist worker's torch, and the processes it starts (through $OMP_NUM_THREADS), takes its share of the
    cores: two workers with a thread per core each fight over them (two trainings side by side measured 2.5x
    slower than with a thread each on 2 cores). Nothing a test checks depends on it beyond float summation order,
    and tests that compare runs compare runs made alike. A thread count set in the environment is left alone."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        share = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


share_the_cores()


def pytest_sessionstart(session) -> None:
    """Earlier sessions' temp folders go now, not when this one ends: pytest keeps tmp_path_retention_count
    (pyproject.toml: 1) sessions and removes older ones at exit, so a disk that earlier runs filled (a CI machine
    that ran the suite before) would stay full while this session writes its own. Locked folders (a session still
    running) are left alone, and so is a --basetemp you chose."""
    config = session.config
    if hasattr(config, "workerinput") or config.option.basetemp:  # xdist workers: the controller does it
        return
    import time

    from _pytest.pathlib import LOCK_TIMEOUT, cleanup_numbered_dir

    current = config._tmp_path_factory.getbasetemp()
    cleanup_numbered_dir(current.parent, "pytest-", keep=1, consider_lock_dead_if_created_before=time.time() - LOCK_TIMEOUT)


def pytest_collection_modifyitems(items) -> None:
    """Files with ``infra`` tests first, then files with ``slow`` ones, then the rest, each file's tests together
    and in order: xdist hands each worker a contiguous share and an idle worker steals from the end of the
    other's, so the long tests start early and the run ends on short ones, not on one worker's minute-long sweep."""
    rank: dict = {}
    for item in items:
        mine = 0 if item.get_closest_marker("infra") else 1 if item.get_closest_marker("slow") else 2
        rank[item.path] = min(rank.get(item.path, 2), mine)
    items.sort(key=lambda item: rank[item.path])


@pytest.fixture(scope="session", autouse=True)
def _shared_folders(tmp_path_factory):
    """Lets the helpers build what all workers share (``helpers.fresh_store``'s migrated MLflow store)."""
    helpers.TMP_PATH_FACTORY = tmp_path_factory


@pytest.fixture(autouse=True)
def _stores_close_with_their_folder(request):
    """A passing test's folder is removed as it ends (tmp_path_retention_policy), and pytest 9.0 (CI's Python has
    9.0.3; 9.2 counts instead) numbers the next folder by listing the existing ones, so the next test of this process
    whose name starts alike gets the same path. MLflow's cached connections to the removed folder's stores would
    serve that test the old files: CI read the [batch] variant's runs in the [async] one's store. They close with
    the folder (mmbehave's own commands notice a replaced store themselves: ``prepare_store``)."""
    yield
    folder = request.node.funcargs.get("tmp_path")
    if folder is not None and "mlflow" in sys.modules:  # no MLflow loaded, no connections to close
        from mmbehave.tracking.store import forget_stores_in

        forget_stores_in(folder)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (raw clips, metadata and processed tensors), generated once per test run."""
    from mmbehave.data.synthetic.generator import ensure_synthetic_dataset

    def build(root: Path) -> None:
        cfg = compose_config([f"data.root={root}", *TINY_SPLITS.split()])
        ensure_synthetic_dataset(cfg.data, num_workers=2, progress=False)

    return built_once(tmp_path_factory, "synthetic", build)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return tmp_path / "run"


@dataclass(frozen=True)
class TrainedRun:
    """A model trained by ``run_training``: its checkpoint, MLflow store and run id."""

    checkpoint: Path        # checkpoints/best.pth
    tracking_uri: str       # the run's own SQLite MLflow store
    run_id: str

    @property
    def env(self) -> dict[str, str]:
        """Environment for CLI calls that should see this run's MLflow store."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri}


@pytest.fixture(scope="session")
def trained_run(synthetic_root, tmp_path_factory) -> TrainedRun:
    """One tiny model (`debug=fast`) trained once per test run, in-process, for the evaluate / predict / export
    tests. Shared by the workers: tests add to its MLflow run (evaluate's and export's metrics, a registered
    model), never change what is there."""
    from helpers import train_here

    from mmbehave.checkpoints.files import read_checkpoint

    workdir = built_once(tmp_path_factory, "trained",
                         lambda folder: train_here(folder, "debug=fast", f"data.root={synthetic_root}",
                                                   *TINY_SPLITS.split()))
    checkpoint = workdir / "run" / "checkpoints" / "best.pth"
    return TrainedRun(checkpoint, f"sqlite:///{workdir / 'mlflow.db'}", read_checkpoint(checkpoint)["mlflow_run_id"])


@pytest.fixture(scope="session")
def synthetic_missing_audio_root(synthetic_root, tmp_path_factory) -> Path:
    """The session's tiny dataset with a quarter of its clips written without audio (the same videos)."""
    from mmbehave.data.synthetic.generator import ensure_synthetic_dataset

    def build(root: Path) -> None:
        cfg = compose_config([f"data.root={root}", "data.missing_audio=0.25", *TINY_SPLITS.split()])
        ensure_synthetic_dataset(cfg.data, num_workers=2, progress=False)

    return built_once(tmp_path_factory, "synthetic_missing_audio", build)
