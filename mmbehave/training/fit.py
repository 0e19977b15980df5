"""The epochs of a run: train, validate, save, log, ask the hooks; and what the run returns.

    per epoch ─► seeded ─► train_one_epoch ─► validate ─► monitor ─► best.pth (if better) + latest.pth, handed
              to the checkpoint writer (a thread: training.background_saves) ─► one log line
              ─► hooks.epoch_reported (a sweep's pruner may stop here) ─► early stopping / stop_after_epoch
    the epoch's MLflow metrics ─► logged once its files are written (between the next steps, or at the end)

Save, then log: a run killed in between is an epoch behind in MLflow (resume fills it in), never ahead of its
checkpoint (resume would log that epoch twice).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from mmbehave.checkpoints.background_writer import CheckpointWriter
from mmbehave.core.errors import ConfigError
from mmbehave.metrics.class_scores import best_f1_thresholds
from mmbehave.tracking.runs import TrackedRun
from mmbehave.training.checkpoint import checkpoint_state, model_state
from mmbehave.training.distributed import gather
from mmbehave.training.hooks import RunHooks, RunStop
from mmbehave.training.loop import (
    TrainingDiverged,
    Validation,
    train_one_epoch,
    validate,
)
from mmbehave.training.metrics_after_save import MetricsAfterSave
from mmbehave.training.monitor import Monitor, is_better, mode_for
from mmbehave.training.parts import TrainingParts
from mmbehave.training.profiling import step_profiler
from mmbehave.training.seeding import epoch_seed, seed_everything
from mmbehave.training.settings import RunSettings

log = logging.getLogger("mmbehave.training.run")


def fit(parts: TrainingParts, settings: RunSettings, *, hooks: RunHooks, monitor: Monitor, tracker: TrackedRun,
        run_dir: Path, record: dict, start_epoch: int) -> RunStop | None:
    """Epoch after epoch from ``start_epoch``; the hooks' RunStop if one of them stopped the run."""
    training, stop = settings.training, None
    logged = MetricsAfterSave(tracker)
    try:
        with step_profiler(training.profile_steps, run_dir / "profile") as profiler_step, \
                CheckpointWriter(background=training.background_saves) as writer:
            for epoch in range(start_epoch, training.num_epochs):
                stop, ends = run_epoch(parts, settings, epoch, hooks=hooks, monitor=monitor, tracker=tracker,
                                       run_dir=run_dir, record=record, writer=writer, logged=logged,
                                       on_step=lambda: (profiler_step(), hooks.step_done(), logged.flush()))
                if stop is not None or ends:
                    break
    finally:
        logged.flush()  # every epoch whose files are written (the writer is joined on leaving the block), also
        #                 when a signal stopped the run
    if (run_dir / "profile").is_dir():
        tracker.log_artifacts(run_dir / "profile", "profile")
    return stop


def run_epoch(parts: TrainingParts, settings: RunSettings, epoch: int, *, hooks: RunHooks, monitor: Monitor,
              tracker: TrackedRun, run_dir: Path, record: dict, writer: CheckpointWriter, logged: MetricsAfterSave,
              on_step) -> tuple[RunStop | None, bool]:
    """One epoch from training to the hooks: (the hooks' RunStop or None, whether the run ends here)."""
    training, started = settings.training, time.perf_counter()
    metrics, validation = train_and_validate(parts, settings, epoch, on_step=on_step)
    improved = monitor.update(epoch, metrics)
    saved, written = time.perf_counter(), logged.saved_flag()
    writer.submit(epoch_writes(parts, monitor=monitor, record=record, validation=validation, epoch=epoch,
                               improved=improved, checkpoints=run_dir / "checkpoints"), then=written.set)
    epoch_metrics = {**metrics, "time/save_s": time.perf_counter() - saved}
    logged.add(written, epoch_metrics, step=epoch)
    log_epoch(epoch, training.num_epochs, metrics, improved, time.perf_counter() - started, monitor.metric,
              [head.name for head in settings.heads])
    stop = hooks.epoch_reported(epoch, metrics)
    if stop is not None:
        log.info("%s", stop.reason)
    ends = stop is None and ends_here(settings, monitor, epoch, tracker, run_dir)
    # the whole epoch a user waits for (training, validation, saving, its log line, the hooks), logged with the
    # epoch's metrics once its checkpoint is written
    epoch_metrics["time/epoch_s"] = time.perf_counter() - started
    return stop, ends


def train_and_validate(parts: TrainingParts, settings: RunSettings, epoch: int, on_step) -> tuple[dict, Validation]:
    """One epoch's training and validation, seeded by the epoch: the same shuffling, augmentation and dropout
    whether the run went straight through or was resumed before this epoch. Under torchrun each process draws
    its own augmentation and dropout (rank 0: the single-process ones). Returns the epoch's metrics."""
    group, training = parts.group, settings.training
    started = time.perf_counter()
    seed_everything(epoch_seed(settings.seed, epoch) + group.rank)
    parts.generator.manual_seed(epoch_seed(settings.seed, epoch))
    if hasattr(parts.train_loader.sampler, "set_epoch"):  # DistributedSampler: this epoch's shuffle
        parts.train_loader.sampler.set_epoch(epoch)
    train_loss = train_one_epoch(parts.stepped_model, parts.train_loader, loss_fn=parts.loss_fn,
                                 optimizer=parts.optimizer, scheduler=parts.scheduler, scaler=parts.scaler,
                                 step=parts.step, epoch=epoch, on_step=on_step)
    train_loss = float(np.mean(gather(train_loss, group)))  # every process's batches, equal in number
    trained = time.perf_counter()
    validation = validate(parts.model, parts.val_loader, loss_fn=parts.loss_fn, device=parts.step.device,
                          precision=parts.step.precision, heads=parts.heads, limit_batches=training.limit_val_batches,
                          train_counts=parts.train_counts, group=group)
    metrics = {"train/loss": train_loss, **validation.metrics, "train/lr": parts.optimizer.param_groups[0]["lr"],
               "fusion/num_params": parts.fusion_params, "time/train_s": trained - started,
               "time/val_s": time.perf_counter() - trained}
    return metrics, validation


def epoch_writes(parts: TrainingParts, *, monitor: Monitor, record: dict, validation: Validation, epoch: int,
                 improved: bool, checkpoints: Path) -> list[tuple[dict, Path]]:
    """latest.pth every epoch; best.pth (for inference: no optimizer state, a third of the size) when better,
    with the multi-label heads' thresholds chosen on this epoch's validation clips. Rank 0 writes: the
    others get nothing to write."""
    writes = []
    if improved:
        record["thresholds"] = {head.name: best_f1_thresholds(validation.targets[head.name],
                                                              validation.probs[head.name]).tolist()
                                for head in parts.heads if head.multi}
        if parts.group.is_main:
            writes.append((model_state(parts, epoch=epoch, monitor=monitor, record=record), checkpoints / "best.pth"))
    if parts.group.is_main:
        writes.append((checkpoint_state(parts, epoch=epoch, monitor=monitor, record=record),
                       checkpoints / "latest.pth"))
    return writes


def ends_here(settings: RunSettings, monitor: Monitor, epoch: int, tracker: TrackedRun, run_dir: Path) -> bool:
    """Early stopping (training.early_stopping_patience) or training.stop_after_epoch, said in the log."""
    training = settings.training
    if epoch + 1 >= training.num_epochs:
        return False
    if monitor.stalled(epoch):
        log.info("Stopping early after epoch %d: %s has not improved on %.4f (epoch %d) for %d epochs "
                 "(training.early_stopping_patience).", epoch + 1, monitor.metric, monitor.best,
                 monitor.best_epoch + 1, training.early_stopping_patience)
        tracker.set_tags({"early_stopped_at_epoch": epoch + 1})
        return True
    if training.stop_after_epoch is not None and training.stop_after_epoch <= epoch + 1:
        log.info("Stopping after epoch %d (training.stop_after_epoch); continue with resume=%s",
                 epoch + 1, run_dir / "checkpoints" / "latest.pth")
        return True
    return False


def log_epoch(epoch: int, num_epochs: int, metrics: dict[str, float], improved: bool, seconds: float,
              monitored: str, heads: list[str]) -> None:
    """One line per epoch; the monitored metric is added when it is not one of the usual ones, so that
    ``*best*`` can be read off the line that says it."""
    shown = {"train/loss", "val/loss", "val/macro_f1", *(f"val/{h}_{k}" for h in heads for k in ("acc", "macro_f1"))}
    per_head = "  ".join(f"{h} acc {metrics[f'val/{h}_acc']:.3f} f1 {metrics[f'val/{h}_macro_f1']:.3f}" for h in heads)
    extra = "" if monitored in shown else f"  {monitored} {metrics[monitored]:.4f}"
    log.info("epoch %d/%d  train/loss %.4f  val/loss %.4f  %s  val/macro_f1 %.4f%s%s  (%.1fs)", epoch + 1, num_epochs,
             metrics["train/loss"], metrics["val/loss"], per_head, metrics["val/macro_f1"], extra,
             "  *best*" if improved else "", seconds)


def objective(objectives: tuple[str, ...], monitor: Monitor) -> float | list[float]:
    """What the run returns to sweepers: the best value of each named metric over the epochs (one value for
    one objective, a list for several)."""
    values = [best_value(name, monitor) for name in objectives]
    return values if len(objectives) > 1 else values[0]


def best_value(name: str, monitor: Monitor) -> float:
    history = monitor.history
    if not history or name not in history[0]:
        known = ", ".join(history[0]) if history else "none logged"
        raise ConfigError(f"optimized_metric={name} is not a logged metric (logged: {known}).")
    mode = monitor.mode if name == monitor.metric else mode_for(name)
    best = None
    for row in history:
        if is_better(row[name], best, mode):
            best = row[name]
    if best is None:  # NaN in every epoch: a failure (and a failed trial), not a result
        raise TrainingDiverged(f"{name} is NaN in every epoch.")
    return float(best)
