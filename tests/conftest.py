"""Fixtures shared by the tests.

The hub is unreachable in CI; HF_HUB_OFFLINE makes any accidental hub access fail at once instead of
after ~20 s of retries.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import TINY_SPLITS, compose_config

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (raw clips, metadata and processed tensors), generated once per session."""
    from mmbehave.data.synthetic import ensure_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    cfg = compose_config([f"data.root={root}", *TINY_SPLITS.split()])
    ensure_synthetic_dataset(cfg.data, num_workers=2, progress=False)
    return root


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return tmp_path / "run"
