"""Helpers shared by the tests: composing the real config and running the real CLIs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mmbehave.core.paths import config_dir

# Small enough to generate in a few seconds; every (species, behaviour) pair appears in every split.
TINY_SPLITS = "data.clips_per_split.train=40 data.clips_per_split.val=20 data.clips_per_split.test=20"


def compose_config(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train") -> DictConfig:
    """The real Hydra composition, as the CLI does it (no hydra runtime keys resolved)."""
    with initialize_config_dir(config_dir=str(config_dir())):
        return compose(config_name=config_name, overrides=list(overrides))


def compose_with_hydra(*overrides: str) -> DictConfig:
    """The composed config with its `hydra` node (sweeper, launcher, overrides), as the callback sees it."""
    with initialize_config_dir(config_dir=str(config_dir())):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def free_port() -> int:
    """A port nothing listens on, on loopback (test servers never bind elsewhere)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_module(module: str, *overrides: str, tmp_path: Path, env: dict | None = None,
               timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m <module> <overrides>`` as a user runs it, from a cwd outside the repo, with a temp MLflow store."""
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **(env or {})}
    full_env.pop("MMBEHAVE_ROOT", None)
    result = subprocess.run([sys.executable, "-m", module, *overrides], cwd=tmp_path, env=full_env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"python -m {module} {' '.join(overrides)} exited {result.returncode}\n"
                             f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}")
    return result


def hydra_dir_override(tmp_path: Path) -> list[str]:
    """Keep the test's Hydra run folders in its temp dir, not the repo's outputs/."""
    return [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]


def default_heads():
    """The heads of the default config (model/heads=guide: species and behavior), as the run reads them."""
    from mmbehave.core.heads import heads_from_config

    return heads_from_config(compose_config())
