"""One checkpoint format, written atomically and read without running code.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so ``torch.load(weights_only=True)``
reads it: a downloaded .pth can never execute anything. Keys:
    model, optimizer, scheduler, scaler   state dicts (scaler may be None)
    epoch                                 last finished epoch (0-based)
    best_metric, history                  best val/macro_f1 so far; per-epoch metrics
    classes                               {"species": [...], "behaviors": [...]}
    data_stats                            {"mel_mean": float, "mel_std": float}
    preprocess                            the data settings the model's inputs were made with
    config                                the resolved Hydra config as YAML text
    mlflow_run_id, rng                    to resume the same MLflow run and random streams
"""

from __future__ import annotations

from pathlib import Path

import torch

from mmbehave.atomic import atomic_path


def save_checkpoint(state: dict, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found. Pass the path of a checkpoints/latest.pth or best.pth.")
    return torch.load(path, map_location=map_location, weights_only=True)
