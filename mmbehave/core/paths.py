"""Where the project lives on disk.

Every path in config is built from ``project_root()`` so that runs, data and stores land in the same
place whatever the working directory (Hydra may change it, and users call from anywhere).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV_VAR = "MMBEHAVE_ROOT"


def project_root() -> Path:
    """The repository root: ``$MMBEHAVE_ROOT`` if set, else the folder holding ``mmbehave/``."""
    override = os.environ.get(ROOT_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2]  # mmbehave/core/paths.py -> the checkout


def config_dir() -> Path:
    """The ``conf/`` folder of Hydra config groups."""
    return project_root() / "conf"
