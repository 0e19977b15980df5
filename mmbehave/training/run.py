"""A whole training run, top to bottom: config in, the best ``optimized_metric`` out, everything in MLflow.

    read the settings (every check that needs no data) ─► plan the resume (every refusal before anything is
    touched) ─► open the run (folder, log file, MLflow run) ─► prepare the data and build the parts
    ─► restore or start ─► fit (epochs: ``fit.py``) ─► finish (objective value, MLflow model)

Outer layers attach through ``hooks`` (``training/hooks.py``): a sweep's trial, a benchmark's clock; the run
knows nothing of them. SIGTERM and Ctrl-C end the run KILLED with its last checkpoint intact; the command then
prints how to resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import DictConfig

from mmbehave.checkpoints.files import (
    RESUME_KEYS,
    read_checkpoint,
    remove_stale_temp_files,
)
from mmbehave.checkpoints.mlflow_models import log_model, should_log
from mmbehave.core.redact import RedactingFilter, redact
from mmbehave.core.signals import stop_on_signals
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.prepared import PreparedData, prepare_data
from mmbehave.tracking.runs import SilentRun, TrackedRun, hydra_command, hydra_overrides, log_run_setup
from mmbehave.tracking.store import bound_http_requests, resolve_tracking_uri
from mmbehave.training.checkpoint import restore
from mmbehave.training.config_tree import print_config_tree
from mmbehave.training.distributed import (
    ProcessGroup,
    broadcast,
    discard_own_folder,
    end_process_group,
    process_device,
    start_process_group,
)
from mmbehave.training.fit import fit, objective
from mmbehave.training.hooks import RunHooks, RunStop
from mmbehave.training.monitor import Monitor
from mmbehave.training.parts import RunBuilders, TrainingParts
from mmbehave.training.resume import (
    backfill_history,
    check_not_behind_mlflow,
    check_resumable,
)
from mmbehave.training.seeding import seed_everything
from mmbehave.training.settings import RunSettings, read_run_settings
from mmbehave.training.warm_start import ROUND_KEY, reviewed_clips

log = logging.getLogger(__name__)


def run_training(cfg: DictConfig, hooks: RunHooks | None = None, distillation=None) -> float | list[float]:
    """The best value of ``optimized_metric`` over epochs; a list of values when it names several metrics
    (a multi-objective sweep). ``distillation``: a teacher the student learns from (python -m mmbehave.distill)."""
    settings = read_run_settings(cfg)
    bound_http_requests(settings.mlflow.http_retries, settings.mlflow.http_timeout_s)
    hardware = settings.hardware
    group = start_process_group(hardware.distributed, hardware.backend, hardware.device)  # torchrun: rank, world
    try:
        if group.active:  # "cuda" is this process's own GPU
            settings = dataclasses.replace(settings, hardware=dataclasses.replace(
                hardware, device=process_device(hardware.device, group)))
        return train(settings, RunBuilders(cfg, distillation), hooks or RunHooks(), group)
    finally:
        end_process_group()


def train(settings: RunSettings, builders: RunBuilders, hooks: RunHooks, group: ProcessGroup) -> float | list[float]:
    """The run, in this process: all of it, or under torchrun one rank's share (rank 0 writes everything).
    Every decision reads ``settings``; ``builders`` only instantiate the config's ``_target_`` nodes."""
    start_process(settings, hooks, group)
    plan = plan_resume(settings, builders, hooks)
    run_dir = broadcast(plan.run_dir(settings.output_dir), group)  # a resumed run carries on in its own folder
    with open_run(settings, plan, hooks, group, run_dir) as tracker:
        if plan.prepared is None:
            builders.dataset_files()
        prepared = plan.prepared or prepare_data(settings.data, settings.modalities, splits=("train", "val"),
                                                 heads=settings.heads)
        parts = builders.parts(settings, prepared, group)
        record = run_record(settings, prepared, parts, tracker.run_id, plan)
        monitor, start_epoch = restore_or_start(settings, plan, parts, tracker, run_dir)
        stop = fit(parts, settings, hooks=hooks, monitor=monitor, tracker=tracker, run_dir=run_dir, record=record,
                   start_epoch=start_epoch)
        return finish(settings, hooks, monitor=monitor, tracker=tracker, stop=stop, run_dir=run_dir, group=group)


def start_process(settings: RunSettings, hooks: RunHooks, group: ProcessGroup) -> None:
    """The config tree (rank 0), torch's thread count and the seed."""
    if settings.print_config and group.is_main:
        print_config_tree(settings.record)
    # Jobs that run side by side (hydra/launcher=parallel) share the cores instead of each taking all of them.
    threads = settings.hardware.torch_threads or hooks.torch_threads()
    if threads:
        torch.set_num_threads(threads)
    seed_everything(settings.seed)


@dataclass(frozen=True)
class ResumePlan:
    """What a resumed run continues: its checkpoint (latest.pth), and the data it was checked against."""

    path: Path | None = None
    checkpoint: dict | None = None
    prepared: PreparedData | None = None

    def run_dir(self, own: Path) -> Path:
        return self.path.resolve().parent.parent if self.path else own


def plan_resume(settings: RunSettings, builders: RunBuilders, hooks: RunHooks) -> ResumePlan:
    """``resume=`` (or a requeued cluster job's own latest.pth): everything that could refuse it runs before
    the original run's folder or MLflow run is touched."""
    path = settings.resume or hooks.resume_checkpoint(settings.output_dir)
    if path is None:
        return ResumePlan()
    checkpoint = read_checkpoint(path, RESUME_KEYS)
    builders.dataset_files()
    prepared = prepare_data(settings.data, settings.modalities, splits=("train", "val"),
                            mel_stats=checkpoint["data_stats"], heads=settings.heads)
    check_resumable(settings.record, path, checkpoint, prepared, settings.modalities)
    check_not_behind_mlflow(path, checkpoint, resolve_tracking_uri(settings.mlflow.tracking_uri))
    return ResumePlan(Path(path), checkpoint, prepared)


@contextlib.contextmanager
def open_run(settings: RunSettings, plan: ResumePlan, hooks: RunHooks, group: ProcessGroup,
             run_dir: Path) -> Iterator[TrackedRun]:
    """Rank 0: the run folder (stale temp files of a killed save removed), signals (unless a sweep handles
    them), the log file and the MLflow run (the checkpoint's, on resume). Other ranks: a silent stand-in."""
    with contextlib.ExitStack() as stack:
        if group.is_main:
            remove_stale_temp_files(run_dir / "checkpoints")
            if not hooks.part_of_sweep:  # a sweep closes every trial it started itself (sweeps.callback)
                stack.enter_context(stop_on_signals(lambda: resume_hint(run_dir)))
            log_path = stack.enter_context(run_log_file(run_dir))
            tracker = TrackedRun(resolve_tracking_uri(settings.mlflow.tracking_uri), settings.mlflow.experiment_name,
                                 settings.mlflow.run_name or hooks.run_name(),
                                 run_id=plan.checkpoint["mlflow_run_id"] if plan.checkpoint else None,
                                 tags=hooks.run_tags())
            tracker.artifacts_at_end.append(log_path)
            stack.enter_context(tracker)
        else:
            tracker = SilentRun()
        tracker.run_id = broadcast(tracker.run_id, group)
        if group.active:
            tracker.set_tags({"world_size": group.world_size})
        hooks.run_started(tracker.run_id)
        yield tracker


def run_record(settings: RunSettings, prepared: PreparedData, parts: TrainingParts, run_id: str | None,
               plan: ResumePlan) -> dict:
    """What a checkpoint keeps of the run besides the states: what inference and resume need to know."""
    return {"classes": prepared.classes.to_dict(), "data_stats": prepared.stats(), "preprocess": prepared.preprocess,
            "modalities": list(settings.modalities), "config": settings.record.yaml(),
            "mlflow_run_id": run_id, "train_class_counts": parts.train_counts,
            "thresholds": plan.checkpoint.get("thresholds", {}) if plan.checkpoint else {},
            # which round of review -> train this model is (training.init_from counts them; 0: trained from scratch)
            ROUND_KEY: (plan.checkpoint.get(ROUND_KEY, 0) if plan.checkpoint
                        else parts.warm_start.review_round if parts.warm_start else 0)}


def restore_or_start(settings: RunSettings, plan: ResumePlan, parts: TrainingParts, tracker: TrackedRun,
                     run_dir: Path) -> tuple[Monitor, int]:
    """(the monitor, the first epoch to train): a resumed run's states and the epochs MLflow missed, or a new
    run's record (params, tags, config, class lists)."""
    training, main = settings.training, parts.group.is_main
    if plan.checkpoint:
        restore(plan.checkpoint, parts, settings.record.section("model"), where=str(plan.path))
        monitor = Monitor.resumed(training.monitor, training.monitor_mode, training.early_stopping_patience,
                                  plan.checkpoint["history"])
        if main:
            backfill_history(tracker, plan.checkpoint)
        log.info("Resumed from %s at epoch %d (MLflow run %s)", plan.path, plan.checkpoint["epoch"] + 2, tracker.run_id)
        return monitor, plan.checkpoint["epoch"] + 1
    if main:
        log_run_setup(tracker, settings.record, parts.model, parts.classes, run_dir, settings.modalities,
                      {**{f"feature_cache.{m}": value for m, value in parts.feature_cache.items()},
                       **(parts.precision.params() if parts.precision else {}),
                       # what data.label_fraction / labels_per_class left: the x axis of a label-efficiency plot
                       "train_clips": len(parts.train_loader.dataset)})
        if parts.warm_start:
            layout = DatasetLayout(settings.data.root, settings.data.labels_dir)
            tracker.set_tags(parts.warm_start.tags(reviewed_clips([layout.metadata_csv(s) for s in ("train", "val")])))
    return Monitor(training.monitor, training.monitor_mode, training.early_stopping_patience), 0


def finish(settings: RunSettings, hooks: RunHooks, *, monitor: Monitor, tracker: TrackedRun, stop: RunStop | None,
           run_dir: Path, group: ProcessGroup) -> float | list[float]:
    """The run's value; a stopped run ends as the hook asked, a finished one logs its best model (single runs:
    a sweep logs only its best trial's) and tells the hooks."""
    value = objective(settings.objectives, monitor)
    if stop is not None:
        tracker.end_as(stop.status, stop.tags)
        hooks.run_stopped(stop)
    else:
        best = run_dir / "checkpoints" / "best.pth"
        if group.is_main and should_log(settings.mlflow.log_model, in_sweep=hooks.part_of_sweep) and best.is_file():
            log_model(best, settings.mlflow.registered_model_name)
        hooks.run_finished(value, tracker.set_tags)
        if group.is_main and not hooks.part_of_sweep:  # a sweep's trials end in the sweep's own summary
            summarise_run(monitor, best, tracker)
    discard_own_folder(settings.output_dir, run_dir, group)
    return value


def summarise_run(monitor: Monitor, best: Path, tracker: TrackedRun) -> None:
    """The run's last lines: the best monitored value and its epoch, best.pth, the MLflow run, what next."""
    from mmbehave.core.summary import print_summary

    uri = redact(tracker.tracking_uri)
    value = "no epoch finished" if monitor.best is None else f"{monitor.best:.4f} (epoch {monitor.best_epoch + 1})"
    checkpoint = str(best) if best.is_file() else "none (no epoch improved on the monitored metric)"
    print_summary("Training done.", [(f"best {monitor.metric}", value), ("checkpoint", checkpoint),
                                     ("MLflow run", f"{tracker.run_id} in {uri}")],
                  [f"python -m mmbehave.evaluate checkpoint={best}",
                   f"python -m mmbehave.predict checkpoint={best} input=<clips> output=predictions.csv",
                   f"mlflow ui --backend-store-uri {uri}"])


def resume_hint(run_dir: Path) -> str:
    """The command that continues this run from its last saved epoch."""
    latest = run_dir / "checkpoints" / "latest.pth"
    if not latest.is_file():
        return "no epoch was finished, so there is nothing to resume: start the run again"
    overrides = [o for o in hydra_overrides().split() if not o.startswith("resume=")]
    return redact(" ".join([f"continue with: python -m mmbehave.{hydra_command()}", f"resume={latest}", *overrides]))


@contextlib.contextmanager
def run_log_file(run_dir: Path) -> Iterator[Path]:
    """The original guide's ``training_YYYYMMDD_HHMMSS.log`` in the run folder, beside Hydra's own log
    (passwords redacted, as in every log)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / f"training_{datetime.now():%Y%m%d_%H%M%S}.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    handler.addFilter(RedactingFilter())
    logging.getLogger().addHandler(handler)
    try:
        yield Path(handler.baseFilename)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
