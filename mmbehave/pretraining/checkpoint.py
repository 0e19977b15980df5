"""pretrain's latest.pth: everything to continue after an epoch, read back with weights_only=True.

Its ``fingerprint`` is every setting the weights depend on (the clips, the encoders, the objectives, the
preprocessing); a resume with another is one line naming the keys, before anything is touched.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mmbehave.core.errors import CheckpointError, ConfigError

KEYS = {"model": dict, "optimizer": dict, "scheduler": dict, "epoch": int, "history": list, "fingerprint": str,
        "mlflow_run_id": (str, type(None)), "rng": dict, "kind": str}
KIND = "mmbehave-pretrain"


def read_latest(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"resume={path}: no such file. Pass the checkpoints/latest.pth of a pretrain run.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"resume={path}: not a readable torch file of tensors ({type(error).__name__}); pass "
                              "the checkpoints/latest.pth of a pretrain run.") from error
    if not isinstance(state, dict) or state.get("kind") != KIND:
        raise CheckpointError(f"resume={path} is not a pretrain checkpoint (a training run's latest.pth continues "
                              "with python -m mmbehave.train resume=...); pass a pretrain run's checkpoints/latest.pth.")
    wrong = [key for key, kind in KEYS.items() if not isinstance(state.get(key), kind)]
    if wrong:
        raise CheckpointError(f"resume={path}: a pretrain checkpoint without {', '.join(wrong)}: it was not written "
                              "whole by this version; start the run again.")
    return state


def check_same_settings(path: Path, stored: str, current: dict) -> None:
    before = json.loads(stored)
    changed = sorted(key for key in set(before) | set(current) if before.get(key) != current.get(key))
    if changed:
        shown = "; ".join(f"{key}: {before.get(key)!r} then, {current.get(key)!r} now" for key in changed[:4])
        raise ConfigError(f"resume={path} was pretrained with other settings ({shown}): give the run's own settings "
                          "to continue it, or start a new run without resume=.")
