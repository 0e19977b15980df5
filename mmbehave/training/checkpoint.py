"""One checkpoint format, written atomically and read without running code.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so ``torch.load(weights_only=True)``
reads it: a downloaded .pth can never execute anything. Keys:
    model, optimizer, scheduler, scaler   state dicts (scaler may be None)
    epoch                                 last finished epoch (0-based)
    best_metric, history                  best value of the monitored metric so far; per-epoch metrics
    monitor                               {"metric": name, "mode": max | min}
    classes                               {"species": [...], "behaviors": [...]}
    data_stats                            {"mel_mean": float, "mel_std": float}
    preprocess                            the data settings the model's inputs were made with
    modalities                            ["video", "audio"], or one of them for an ablated model
    config                                the resolved Hydra config as YAML text
    mlflow_run_id, rng                    to resume the same MLflow run and random streams
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mmbehave.core.atomic import atomic_path
from mmbehave.training.seeding import restore_rng_states, rng_states

if TYPE_CHECKING:
    from mmbehave.training.monitor import Monitor
    from mmbehave.training.parts import TrainingParts


def save_checkpoint(state: dict, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found. Pass the path of a checkpoints/latest.pth or best.pth.")
    return torch.load(path, map_location=map_location, weights_only=True)


def checkpoint_state(parts: TrainingParts, *, epoch: int, monitor: Monitor, record: dict) -> dict:
    """Everything to resume after ``epoch`` (and to rebuild the model): the parts' states, the monitor, the
    random streams as they are now, and ``record`` (what does not change during a run: classes, data
    statistics, preprocessing, modalities, config, MLflow run id)."""
    return {
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(), "scaler": parts.scaler.state_dict() if parts.scaler else None,
        "epoch": epoch, "history": monitor.history, "best_metric": monitor.best,
        "monitor": {"metric": monitor.metric, "mode": monitor.mode},
        **record, "rng": rng_states(),
    }


def restore(checkpoint: dict, parts: TrainingParts) -> None:
    """Load a checkpoint's states into freshly built parts and continue its random streams."""
    parts.model.load_state_dict(checkpoint["model"])
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    parts.scheduler.load_state_dict(checkpoint["scheduler"])
    if parts.scaler and checkpoint.get("scaler"):
        parts.scaler.load_state_dict(checkpoint["scaler"])
    restore_rng_states(checkpoint["rng"])
