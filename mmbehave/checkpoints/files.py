"""The one checkpoint format, written atomically and read without running code.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so ``torch.load(weights_only=True)``
reads it: a downloaded .pth can never execute anything. Keys:
    model, optimizer, scheduler, scaler   state dicts (scaler may be None)
    epoch                                 last finished epoch (0-based)
    best_metric, history                  best value of the monitored metric so far; per-epoch metrics
    monitor                               {"metric": name, "mode": max | min}
    classes                               {head: [class names]} in model.heads order (before heads were
                                          configurable: {"species": [...], "behaviors": [...]})
    train_class_counts                    {head: [...]}: training clips per class, which splits classes into
                                          frequent and rare
    thresholds                            {multi head: [per-class probability threshold]}, chosen on the
                                          validation split for the best F1 (absent: 0.5)
    data_stats                            {"mel_mean": float, "mel_std": float}
    preprocess                            the data settings the model's inputs were made with
    modalities                            ["video", "audio"], or one of them for an ablated model
    config                                the resolved Hydra config as YAML text
    mlflow_run_id, rng                    to resume the same MLflow run and random streams
latest.pth has them all; best.pth, for inference, leaves out optimizer, scheduler, scaler and rng
(``mmbehave.training.checkpoint`` makes both from a run's parts).
"""


from __future__ import annotations

import errno
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import CheckpointError, StorageError

log = logging.getLogger(__name__)

WHAT_A_CHECKPOINT_IS = ("An mmbehave checkpoint is the checkpoints/best.pth or latest.pth a training run writes, or a "
                        "model_*.pth from mmbehave.export: a dict of tensors and plain values.")
# What each use needs, with the type each value must have.
MODEL_KEYS = {"model": dict, "classes": dict, "config": str, "preprocess": dict, "data_stats": dict}
RESUME_KEYS = {**MODEL_KEYS, "optimizer": dict, "scheduler": dict, "epoch": int, "history": list, "rng": dict,
               "mlflow_run_id": str}


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write ``state`` atomically. A full disk is a StorageError naming the path (checked before writing where
    the size is known, and recognised when a write fails); the temp file never stays behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    needed = tensor_bytes(state)
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise StorageError(_disk_full(path, free, needed))
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as error:  # torch reports a failed write as RuntimeError (inline_container.cc)
        free = shutil.disk_usage(path.parent).free
        if getattr(error, "errno", None) == errno.ENOSPC or free < max(needed, 1 << 20):
            raise StorageError(_disk_full(path, free, needed)) from error
        raise StorageError(f"{path}: the checkpoint could not be written ({_first_line(error)}).") from error


def _disk_full(path: Path, free: int, needed: int) -> str:
    return (f"{path}: the disk is full ({free / 2**20:.1f} MiB free, the checkpoint needs about {needed / 2**20:.1f} MiB); "
            "free some space (the previous checkpoints are intact) and resume, or put runs elsewhere with hydra.run.dir=.")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def tensor_bytes(value: Any) -> int:
    """Bytes of tensor data in a nested checkpoint state: a lower bound on its file size."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


def remove_stale_temp_files(checkpoint_dir: Path) -> list[Path]:
    """Temp files a killed save left behind (``.latest.pth.*.tmp.pth``): a run removes its own when it starts."""
    stale = sorted(checkpoint_dir.glob(".*.pth.*.tmp.pth")) if checkpoint_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("Removed %d temp file(s) an interrupted save left in %s", len(stale), checkpoint_dir)
    return stale


def read_checkpoint(path: str | Path, required: dict[str, type] = MODEL_KEYS) -> dict:
    """The contents of a checkpoint file, read with ``weights_only=True`` (no code can run), on the CPU, and
    checked: anything that is not an mmbehave checkpoint with ``required`` keys of the right types is a one-line
    CheckpointError saying what the file lacks and what a checkpoint is."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found. Pass the path of a checkpoints/latest.pth or best.pth.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # quantised tensors' storage warnings
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, truncated, or a pickle of objects weights_only refuses
        refused = "weights_only" in str(error).lower() or "unpickl" in type(error).__name__.lower()
        what = ("it holds Python objects, which are never loaded (a pickled program?)" if refused
                else f"it is not a readable torch file ({type(error).__name__}: {_first_line(error)})")
        raise CheckpointError(f"{path}: not an mmbehave checkpoint: {what}. {WHAT_A_CHECKPOINT_IS}") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not an mmbehave checkpoint: it holds a {type(checkpoint).__name__}, not a dict. "
                              f"{WHAT_A_CHECKPOINT_IS}")
    missing = [key for key in required if key not in checkpoint]
    is_model_file = all(isinstance(checkpoint.get(key), kind) for key, kind in MODEL_KEYS.items())
    if missing and required is RESUME_KEYS and is_model_file:
        raise CheckpointError(f"{path} is a model checkpoint (a best.pth or an export): it has no optimizer state "
                              f"({', '.join(missing)}) to resume from; resume from the run's checkpoints/latest.pth.")
    wrong = [f"{key} ({type(checkpoint[key]).__name__}, not {kind.__name__})" for key, kind in required.items()
             if key in checkpoint and not isinstance(checkpoint[key], kind)]
    if missing or wrong:
        problems = ([f"it lacks {', '.join(missing)}"] if missing else []) + ([f"wrong types: {', '.join(wrong)}"]
                                                                             if wrong else [])
        raise CheckpointError(f"{path}: not an mmbehave checkpoint: {'; '.join(problems)}. {WHAT_A_CHECKPOINT_IS}")
    classes, stats = checkpoint["classes"], checkpoint["data_stats"]
    if not classes or not all(isinstance(names, list) for names in classes.values()) or not all(
            isinstance(stats.get(k), (int, float)) for k in ("mel_mean", "mel_std")):
        raise CheckpointError(f"{path}: not an mmbehave checkpoint: its classes need a list of class names per head "
                              f"and its data_stats mel_mean and mel_std numbers. {WHAT_A_CHECKPOINT_IS}")
    return checkpoint
