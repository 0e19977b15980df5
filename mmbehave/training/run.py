"""A whole training run, top to bottom: config in, the best ``optimized_metric`` out, everything in MLflow.

    check config ─► (resume=: check the checkpoint can continue its run) ─► open the run (folder, log file,
    MLflow run) ─► prepare and check the data ─► build the parts ─► restore ─► per epoch: train, validate,
    save, log ─► the best value of optimized_metric over the epochs

SIGTERM and Ctrl-C end the run KILLED with its last checkpoint intact; the command then prints how to resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from mmbehave.checkpoints.files import (
    RESUME_KEYS,
    read_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
)
from mmbehave.checkpoints.mlflow_models import log_model, should_log
from mmbehave.core.config_checks import check_config, configured_modalities
from mmbehave.core.config_tree import print_config_tree
from mmbehave.core.errors import ConfigError
from mmbehave.core.heads import heads_from_config
from mmbehave.core.redact import redact
from mmbehave.core.settings import RunSettings
from mmbehave.core.signals import stop_on_signals
from mmbehave.data.prepared import prepare_data
from mmbehave.metrics.class_scores import best_f1_thresholds
from mmbehave.metrics.metric_names import check_metrics_are_recorded
from mmbehave.tracking.runs import SilentRun, TrackedRun, hydra_overrides, log_run_setup
from mmbehave.tracking.store import bound_http_requests, resolve_tracking_uri
from mmbehave.training.checkpoint import checkpoint_state, model_state, restore
from mmbehave.training.distributed import (
    ProcessGroup,
    broadcast,
    discard_own_folder,
    end_process_group,
    gather,
    process_device,
    start_process_group,
)
from mmbehave.training.loop import TrainingDiverged, train_one_epoch, validate
from mmbehave.training.monitor import Monitor, is_better, mode_for
from mmbehave.training.parts import TrainingParts, build_parts
from mmbehave.training.profiling import step_profiler
from mmbehave.training.requeue import requeued_checkpoint
from mmbehave.training.resume import (
    backfill_history,
    check_not_behind_mlflow,
    check_resumable,
)
from mmbehave.training.seeding import epoch_seed, seed_everything
from mmbehave.training.sweep_job import SweepJob, current_sweep_job
from mmbehave.training.trial_link import TrialLink, TrialPruned

# The tag on a sweep trial's MLflow run holding what the run returned (JSON): sweeps.study reads it to keep a
# finished trial's value when its sweep was killed before telling Optuna.
OBJECTIVE_TAG = "objective_value"

log = logging.getLogger(__name__)


def run_training(cfg: DictConfig) -> float | list[float]:
    """The best value of ``optimized_metric`` over epochs; a list of values when it names several metrics
    (a multi-objective sweep)."""
    # ---- settings: every check that needs neither data nor a model, before any work
    settings = check_config(cfg)
    check_metrics_are_recorded(cfg)
    bound_http_requests(cfg.mlflow.get("http_retries"), cfg.mlflow.get("http_timeout_s"))
    hardware = settings.hardware
    group = start_process_group(hardware.distributed, hardware.backend, hardware.device)  # torchrun: rank, world
    try:
        if group.active:  # "cuda" is this process's own GPU
            settings = dataclasses.replace(settings, hardware=dataclasses.replace(
                hardware, device=process_device(hardware.device, group)))
        return train_in_process(cfg, settings, group)
    finally:
        end_process_group()


def train_in_process(cfg: DictConfig, settings: RunSettings, group: ProcessGroup) -> float | list[float]:
    """The run, in this process: all of it, or under torchrun one rank's share (rank 0 writes everything)."""
    main = group.is_main
    if cfg.get("print_config") and main:
        print_config_tree(cfg)
    sweep_job = current_sweep_job()  # set in a multirun's jobs by mmbehave.sweeps.callback
    # Jobs that run side by side (hydra/launcher=parallel) share the cores instead of each taking all of them.
    threads = settings.hardware.torch_threads or (sweep_job.torch_threads if sweep_job else None)
    if threads:
        torch.set_num_threads(threads)
    seed_everything(settings.seed)

    modalities = configured_modalities(cfg)
    heads = heads_from_config(cfg)
    training = settings.training

    # ---- resume=: everything that could refuse it runs before its folder or MLflow run is touched
    checkpoint, prepared = None, None
    resume = cfg.resume or requeued_checkpoint(Path(cfg.paths.output_dir))  # a job SLURM stopped and requeued
    if resume:
        checkpoint = read_checkpoint(resume, RESUME_KEYS)
        prepared = prepare_data(cfg.data, modalities, splits=("train", "val"), mel_stats=checkpoint["data_stats"],
                                heads=heads)
        check_resumable(cfg, checkpoint, prepared, modalities)
        check_not_behind_mlflow(cfg, checkpoint, resolve_tracking_uri(cfg.mlflow.tracking_uri))

    # ---- the run: a resumed run carries on in its own folder and MLflow run (under torchrun: rank 0's)
    own_dir = Path(cfg.paths.output_dir)
    run_dir = broadcast(Path(resume).resolve().parent.parent if checkpoint else own_dir, group)
    with contextlib.ExitStack() as stack:
        if main:
            remove_stale_temp_files(run_dir / "checkpoints")
            # A sweep's jobs leave signals to the sweep (mmbehave.sweeps.callback): it closes every trial it started.
            if sweep_job is None:
                stack.enter_context(stop_on_signals(lambda: resume_hint(run_dir)))
            log_path = stack.enter_context(run_log_file(run_dir))
            tracker = stack.enter_context(open_tracked_run(cfg, checkpoint, sweep_job, log_path))
        else:
            tracker = SilentRun()
        tracker.run_id = broadcast(tracker.run_id, group)
        if group.active:
            tracker.set_tags({"world_size": group.world_size})
        # ---- data and parts
        if prepared is None:
            prepared = prepare_data(cfg.data, modalities, splits=("train", "val"), heads=heads)
        parts = build_parts(cfg, settings, prepared, modalities, group)
        record = {"classes": prepared.classes.to_dict(), "data_stats": prepared.stats(),
                  "preprocess": prepared.preprocess, "modalities": list(modalities),
                  "config": redact(OmegaConf.to_yaml(cfg, resolve=True)), "mlflow_run_id": tracker.run_id,
                  "train_class_counts": parts.train_counts,
                  "thresholds": checkpoint.get("thresholds", {}) if checkpoint else {}}

        # ---- restore, or record what a new run is
        if checkpoint:
            restore(checkpoint, parts)
            monitor = Monitor.resumed(training.monitor, training.monitor_mode, training.early_stopping_patience,
                                      checkpoint["history"])
            if main:
                backfill_history(tracker, checkpoint)
            log.info("Resumed from %s at epoch %d (MLflow run %s)", resume, checkpoint["epoch"] + 2, tracker.run_id)
        else:
            monitor = Monitor(training.monitor, training.monitor_mode, training.early_stopping_patience)
            if main:
                log_run_setup(tracker, cfg, parts.model, prepared.classes, run_dir, modalities,
                              {f"feature_cache.{m}": value for m, value in parts.feature_cache.items()})
        start_epoch = checkpoint["epoch"] + 1 if checkpoint else 0

        # ---- epochs (in an Optuna sweep, reported to the trial, which the study's pruner may stop)
        trial = sweep_job.trial_link(training.num_epochs) if sweep_job else None
        try:
            fit(parts, settings, monitor, tracker, run_dir, record, start_epoch, trial=trial,
                trial_metric=None if OmegaConf.is_list(cfg.optimized_metric) else str(cfg.optimized_metric))
        except TrialPruned as pruned:
            log.info("Optuna's pruner stopped trial %s %s: the study has better trials.", sweep_job.trial_number, pruned)
            tracker.end_as("KILLED", {"pruned": "true", "pruned_at_epoch": pruned.epoch + 1,
                                      "failure_reason": f"pruned by {trial.pruning.pruner} after epoch {pruned.epoch + 1}"})
            trial.prune()
            return objective(cfg.optimized_metric, monitor)  # the sweeper's tell leaves the PRUNED trial alone
        value = objective(cfg.optimized_metric, monitor)
        if sweep_job:  # what the sweep's trial is worth, even if the sweep dies before telling Optuna
            tracker.set_tags({OBJECTIVE_TAG: json.dumps(value)})
        best = run_dir / "checkpoints" / "best.pth"
        if main and should_log(cfg.mlflow.log_model, in_sweep=sweep_job is not None) and best.is_file():
            log_model(best, cfg.mlflow.get("registered_model_name"))
        discard_own_folder(own_dir, run_dir, group)
        if trial:  # at once, so that other jobs' pruners and samplers see it before the whole batch is done
            trial.complete(value)
    return value


def resume_hint(run_dir: Path) -> str:
    """The command that continues this run from its last saved epoch."""
    latest = run_dir / "checkpoints" / "latest.pth"
    if not latest.is_file():
        return "no epoch was finished, so there is nothing to resume: start the run again"
    overrides = [o for o in hydra_overrides().split() if not o.startswith("resume=")]
    return redact(" ".join(["continue with: python -m mmbehave.train", f"resume={latest}", *overrides]))


def fit(parts: TrainingParts, settings: RunSettings, monitor: Monitor, tracker: TrackedRun, run_dir: Path,
        record: dict, start_epoch: int, trial: TrialLink | None = None, trial_metric: str | None = None) -> None:
    """Train and validate epoch after epoch from ``start_epoch``; log, save latest.pth (and best.pth). In a
    sweep, each epoch's ``trial_metric`` goes to the Optuna ``trial``, whose pruner may end the run
    (TrialPruned, after the epoch is saved and logged)."""
    training, checkpoints = settings.training, run_dir / "checkpoints"
    heads, group = parts.heads, parts.group
    first_step = FirstStepClock()
    with step_profiler(training.profile_steps, run_dir / "profile") as profiler_step:
        for epoch in range(start_epoch, training.num_epochs):
            started = time.perf_counter()
            # Each epoch from its own seed: the same shuffling, augmentation and dropout whether the run went
            # straight through or was resumed before this epoch.
            # Under torchrun each process draws its own augmentation and dropout (rank 0: the single-process ones).
            seed_everything(epoch_seed(settings.seed, epoch) + group.rank)
            parts.generator.manual_seed(epoch_seed(settings.seed, epoch))
            if hasattr(parts.train_loader.sampler, "set_epoch"):  # DistributedSampler: this epoch's shuffle
                parts.train_loader.sampler.set_epoch(epoch)
            train_loss = train_one_epoch(parts.stepped_model, parts.train_loader, loss_fn=parts.loss_fn,
                                         optimizer=parts.optimizer, scheduler=parts.scheduler, scaler=parts.scaler,
                                         step=parts.step, epoch=epoch, on_step=lambda: (profiler_step(), first_step()))
            train_loss = float(np.mean(gather(train_loss, group)))  # every process's batches, equal in number
            trained = time.perf_counter()
            evaluation = validate(parts.model, parts.val_loader, loss_fn=parts.loss_fn, device=parts.step.device,
                                  precision=parts.step.precision, heads=heads, limit_batches=training.limit_val_batches,
                                  train_counts=parts.train_counts, group=group)
            validated = time.perf_counter()
            metrics = {"train/loss": train_loss, **evaluation.metrics, "train/lr": parts.optimizer.param_groups[0]["lr"],
                       "fusion/num_params": parts.fusion_params,
                       "time/train_s": trained - started, "time/val_s": validated - trained}
            improved = monitor.update(epoch, metrics)

            # Save, then log: a run killed in between is an epoch behind in MLflow (resume fills it in), never
            # ahead of its checkpoint (resume would log that epoch twice). best.pth is for inference: no
            # optimizer state, a third of latest.pth's size.
            if improved:
                # The multi-label heads' thresholds, chosen on this (the best) epoch's validation clips.
                record["thresholds"] = {head.name: best_f1_thresholds(evaluation.targets[head.name],
                                                                      evaluation.probs[head.name]).tolist()
                                        for head in heads if head.multi}
                if group.is_main:
                    save_checkpoint(model_state(parts, epoch=epoch, monitor=monitor, record=record),
                                    checkpoints / "best.pth")
            if group.is_main:
                save_checkpoint(checkpoint_state(parts, epoch=epoch, monitor=monitor, record=record),
                                checkpoints / "latest.pth")
            tracker.log_metrics({**metrics, "time/save_s": time.perf_counter() - validated}, step=epoch)
            log_epoch(epoch, training.num_epochs, metrics, improved, time.perf_counter() - started, monitor.metric,
                      [head.name for head in heads])
            if trial is not None and trial_metric is not None:
                trial.report(metrics[trial_metric], epoch)

            if monitor.stalled(epoch) and epoch + 1 < training.num_epochs:
                log.info("Stopping early after epoch %d: %s has not improved on %.4f (epoch %d) for %d epochs "
                         "(training.early_stopping_patience).", epoch + 1, monitor.metric, monitor.best,
                         monitor.best_epoch + 1, training.early_stopping_patience)
                tracker.set_tags({"early_stopped_at_epoch": epoch + 1})
                break
            if training.stop_after_epoch is not None and training.stop_after_epoch <= epoch + 1 < training.num_epochs:
                log.info("Stopping after epoch %d (training.stop_after_epoch); continue with resume=%s",
                         epoch + 1, checkpoints / "latest.pth")
                break
    if (run_dir / "profile").is_dir():
        tracker.log_artifacts(run_dir / "profile", "profile")


class FirstStepClock:
    """Logs, once, how long after the process started the first training step finished: the start-up cost a
    user waits through (imports, config, data checks, model build), measured by ``mmbehave.benchmark``."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        age = seconds_since_process_start()
        if age is not None:
            log.info("First training step done %.2f s after the process started", age)


def seconds_since_process_start() -> float | None:
    """Wall seconds since this process was started (Linux /proc; None elsewhere)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def log_epoch(epoch: int, num_epochs: int, metrics: dict[str, float], improved: bool, seconds: float,
              monitored: str = "val/macro_f1", heads: list[str] | None = None) -> None:
    """One line per epoch; the monitored metric is added when it is not one of the usual ones, so that
    ``*best*`` can be read off the line that says it."""
    heads = heads or ["species", "behavior"]
    shown = {"train/loss", "val/loss", "val/macro_f1", *(f"val/{h}_{k}" for h in heads for k in ("acc", "macro_f1"))}
    per_head = "  ".join(f"{h} acc {metrics[f'val/{h}_acc']:.3f} f1 {metrics[f'val/{h}_macro_f1']:.3f}" for h in heads)
    extra = "" if monitored in shown else f"  {monitored} {metrics[monitored]:.4f}"
    log.info("epoch %d/%d  train/loss %.4f  val/loss %.4f  %s  val/macro_f1 %.4f%s%s  (%.1fs)", epoch + 1, num_epochs,
             metrics["train/loss"], metrics["val/loss"], per_head, metrics["val/macro_f1"], extra,
             "  *best*" if improved else "", seconds)


def objective(optimized_metric, monitor: Monitor) -> float | list[float]:
    """What the run returns to sweepers: the best value of each named metric over the epochs."""
    if OmegaConf.is_list(optimized_metric):
        return [best_value(str(name), monitor) for name in optimized_metric]
    return best_value(str(optimized_metric), monitor)


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


@contextlib.contextmanager
def run_log_file(run_dir: Path) -> Iterator[Path]:
    """The original guide's ``training_YYYYMMDD_HHMMSS.log`` in the run folder, beside Hydra's own log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / f"training_{datetime.now():%Y%m%d_%H%M%S}.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield Path(handler.baseFilename)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def open_tracked_run(cfg: DictConfig, checkpoint: dict | None, sweep_job: SweepJob | None,
                     log_path: Path) -> Iterator[TrackedRun]:
    """The run's MLflow run (the checkpoint's, on resume), ended FINISHED, FAILED or KILLED; the log file is
    uploaded at the end. In a sweep the run is a child of the sweep's parent run."""
    tracker = TrackedRun(resolve_tracking_uri(cfg.mlflow.tracking_uri), cfg.mlflow.experiment_name,
                         cfg.mlflow.run_name or (sweep_job.run_name if sweep_job else None),
                         run_id=checkpoint["mlflow_run_id"] if checkpoint else None,
                         tags=sweep_job.tags() if sweep_job else None)  # parent run, sweep id, trial number
    tracker.artifacts_at_end.append(log_path)
    with tracker:
        if sweep_job:
            sweep_job.run_id = tracker.run_id
        yield tracker
