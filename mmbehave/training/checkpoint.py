"""A training run's parts as a checkpoint and back (the file format: ``mmbehave.checkpoints.files``).

    checkpoint_state  everything to resume after an epoch (latest.pth)
    model_state       what inference needs (best.pth): no optimizer, scheduler or random states
    restore           a checkpoint's states into freshly built parts
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmbehave.checkpoints.frozen_weights import (
    check_same_weights,
    load_named_state,
    stored_state,
)
from mmbehave.training.seeding import restore_rng_states, rng_states

if TYPE_CHECKING:
    from mmbehave.training.monitor import Monitor
    from mmbehave.training.parts import TrainingParts


def model_weights(parts: TrainingParts) -> dict:
    """The model's state, and the digests of the frozen encoders it names instead of holding (if any)."""
    if not parts.frozen_digests:
        return {"model": parts.model.state_dict()}
    return {"model": stored_state(parts.model, parts.frozen_digests), "frozen_weights": dict(parts.frozen_digests)}


def checkpoint_state(parts: TrainingParts, *, epoch: int, monitor: Monitor, record: dict) -> dict:
    """Everything to resume after ``epoch`` (and to rebuild the model): the parts' states, the monitor, the
    random streams as they are now, and ``record`` (what does not change during a run: classes, data
    statistics, preprocessing, modalities, config, MLflow run id)."""
    return {
        **model_weights(parts), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(), "scaler": parts.scaler.state_dict() if parts.scaler else None,
        "epoch": epoch, "history": monitor.history, "best_metric": monitor.best,
        "monitor": {"metric": monitor.metric, "mode": monitor.mode},
        **record, "rng": rng_states(),
    }


def model_state(parts: TrainingParts, *, epoch: int, monitor: Monitor, record: dict) -> dict:
    """What inference needs (best.pth): the model's weights and the run's record, without the optimizer,
    scheduler and random states that only resume needs."""
    return {**model_weights(parts), "epoch": epoch, "history": monitor.history, "best_metric": monitor.best,
            "monitor": {"metric": monitor.metric, "mode": monitor.mode}, **record}


def restore(checkpoint: dict, parts: TrainingParts, model_cfg, where: str) -> None:
    """Load a checkpoint's states into freshly built parts and continue its random streams. Frozen encoders the
    checkpoint names (``frozen_weights``) were built from their pretrained weights: those must be the same."""
    named = checkpoint.get("frozen_weights") or {}
    if named:
        check_same_weights(parts.model, named, model_cfg, where)
        load_named_state(parts.model, checkpoint["model"], named, where)
    else:
        parts.model.load_state_dict(checkpoint["model"])
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    parts.scheduler.load_state_dict(checkpoint["scheduler"])
    if parts.scaler and checkpoint.get("scaler"):
        parts.scaler.load_state_dict(checkpoint["scaler"])
    restore_rng_states(checkpoint["rng"])
