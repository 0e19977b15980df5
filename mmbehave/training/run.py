"""A whole training run: config in, best ``optimized_metric`` out, everything logged to MLflow.

    check config -> open MLflow run -> prepare + check data -> build model, optimizer, schedule
    -> per epoch: train, validate, log, save latest.pth (and best.pth) -> return best metric
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mmbehave.config_checks import ConfigError, check_config, configured_modalities
from mmbehave.instantiate import build
from mmbehave.sweeps.job import current_sweep_job
from mmbehave.training.checkpoint import load_checkpoint, save_checkpoint
from mmbehave.training.data_setup import (
    make_dataset,
    make_loader,
    prepare_data,
    preprocess_settings,
)
from mmbehave.training.loop import TrainingDiverged, evaluate, train_one_epoch
from mmbehave.training.loss import MultiTaskLoss, inverse_frequency_weights
from mmbehave.training.schedule import warmup_cosine
from mmbehave.training.seeding import (
    epoch_seed,
    restore_rng_states,
    rng_states,
    seed_everything,
)
from mmbehave.training.tracking import (
    TrackedRun,
    flatten_config,
    git_commit,
    resolve_tracking_uri,
)

log = logging.getLogger(__name__)


def metric_is_better(name: str, value: float, best: float | None) -> bool:
    """Losses improve downwards, every other metric upwards."""
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if name.endswith("loss") else value > best


def attach_log_file(run_dir: Path) -> logging.Handler:
    """The seed's ``training_YYYYMMDD_HHMMSS.log`` in the run folder, beside Hydra's own log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / f"training_{datetime.now():%Y%m%d_%H%M%S}.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def hydra_overrides() -> str:
    return " ".join(HydraConfig.get().overrides.task) if HydraConfig.initialized() else ""


def run_training(cfg: DictConfig) -> float | list[float]:
    """The best value of ``optimized_metric`` over epochs; a list of values when it names several metrics
    (a multi-objective sweep)."""
    check_config(cfg)
    sweep_job = current_sweep_job()  # set in a multirun's jobs by mmbehave.sweeps.callback
    # Jobs that run side by side (hydra/launcher=parallel) share the cores instead of each taking all of them.
    threads = cfg.hardware.torch_threads or (sweep_job.torch_threads if sweep_job else None)
    if threads:
        torch.set_num_threads(int(threads))
    seed_everything(int(cfg.seed))
    checkpoint = load_checkpoint(cfg.resume) if cfg.resume else None
    # A resumed run carries on in its own folder, so its checkpoints and logs stay together.
    run_dir = Path(cfg.resume).resolve().parent.parent if checkpoint else Path(cfg.paths.output_dir)
    handler = attach_log_file(run_dir)
    tracker = TrackedRun(resolve_tracking_uri(cfg.mlflow.tracking_uri), cfg.mlflow.experiment_name,
                         cfg.mlflow.run_name or (sweep_job.run_name if sweep_job else None),
                         run_id=checkpoint["mlflow_run_id"] if checkpoint else None,
                         tags=sweep_job.tags() if sweep_job else None)  # parent run, sweep id, trial number
    tracker.artifacts_at_end.append(Path(handler.baseFilename))
    try:
        with tracker:
            if sweep_job:
                sweep_job.run_id = tracker.run_id
            return _train(cfg, checkpoint, run_dir, tracker)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _train(cfg: DictConfig, checkpoint: dict | None, run_dir: Path, tracker: TrackedRun) -> float:
    modalities = configured_modalities(cfg)
    prepared = prepare_data(cfg.data, modalities, splits=("train", "val"),
                            mel_stats=checkpoint["data_stats"] if checkpoint else None)
    classes = prepared.classes
    if checkpoint and classes.to_dict() != checkpoint["classes"]:
        raise ConfigError(f"resume={cfg.resume}: the checkpoint was trained on other classes "
                          f"({checkpoint['classes']}) than data.root={cfg.data.root} has ({classes.to_dict()}).")
    device = torch.device(cfg.hardware.device)
    log.info("Instantiating model <%s>", cfg.model._target_)
    model = build(cfg.model, num_species=len(classes.species), num_behaviors=len(classes.behaviors)).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # The fusion's cost, for the multi-objective sweep (hparams_search=mbt_pareto): constant over epochs,
    # logged with them so that optimized_metric can name it like any other metric.
    fusion_params = float(sum(p.numel() for p in model.fusion.parameters()))
    log.info("Instantiating optimizer <%s>", cfg.optimizer._target_)
    optimizer = build(cfg.optimizer)(params=trainable)

    training = cfg.training
    generator = torch.Generator()
    train_set = make_dataset(prepared, "train", modalities, classes, cfg.data.get("augment"))
    train_loader = make_loader(train_set, int(training.batch_size), cfg.hardware, shuffle=True, generator=generator)
    val_loader = make_loader(make_dataset(prepared, "val", modalities, classes), int(training.batch_size),
                             cfg.hardware, shuffle=False)
    batches = len(train_loader) if training.limit_train_batches is None else min(len(train_loader), int(training.limit_train_batches))
    steps_per_epoch = math.ceil(batches / int(training.grad_accum_steps))
    scheduler = warmup_cosine(optimizer, steps_per_epoch * int(training.num_epochs),
                              int(steps_per_epoch * float(training.warmup_epochs)), float(training.min_lr_ratio))
    scaler = torch.amp.GradScaler(device.type) if cfg.hardware.precision == "fp16" else None
    loss_cfg = training.loss
    loss_fn = MultiTaskLoss(
        float(loss_cfg.species_weight), float(loss_cfg.behavior_weight), float(loss_cfg.label_smoothing),
        inverse_frequency_weights(train_set.species, len(classes.species)) if loss_cfg.class_weighted else None,
        inverse_frequency_weights(train_set.behaviors, len(classes.behaviors)) if loss_cfg.class_weighted else None,
    ).to(device)

    start_epoch, history, best_f1 = 0, [], None
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_states(checkpoint["rng"])
        start_epoch, history, best_f1 = checkpoint["epoch"] + 1, checkpoint["history"], checkpoint["best_metric"]
        log.info("Resumed from %s at epoch %d (MLflow run %s)", cfg.resume, start_epoch + 1, tracker.run_id)
    else:
        _log_run_setup(cfg, tracker, model, classes, run_dir, modalities)

    checkpoint_dir = run_dir / "checkpoints"
    config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
    num_epochs = int(training.num_epochs)
    stop_after = training.get("stop_after_epoch")
    for epoch in range(start_epoch, num_epochs):
        started = time.perf_counter()
        seed_everything(epoch_seed(int(cfg.seed), epoch))
        generator.manual_seed(epoch_seed(int(cfg.seed), epoch))
        train_loss = train_one_epoch(model, train_loader, loss_fn, optimizer, scheduler, scaler, device,
                                     cfg.hardware.precision, int(training.grad_accum_steps), training.grad_clip_norm,
                                     training.limit_train_batches, epoch,
                                     modality_dropout=float(training.get("modality_dropout", 0.0)))
        evaluation = evaluate(model, val_loader, loss_fn, device, cfg.hardware.precision, len(classes.species),
                              len(classes.behaviors), training.limit_val_batches)
        metrics = {"train/loss": train_loss, **evaluation.metrics, "train/lr": optimizer.param_groups[0]["lr"],
                   "fusion/num_params": fusion_params}
        tracker.log_metrics(metrics, step=epoch)
        history.append({"epoch": epoch, **metrics})
        state = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None, "epoch": epoch, "history": history,
            "classes": classes.to_dict(), "data_stats": prepared.stats(), "preprocess": preprocess_settings(cfg.data),
            "modalities": list(modalities), "config": config_yaml, "mlflow_run_id": tracker.run_id, "rng": rng_states(),
        }
        improved = metric_is_better("val/macro_f1", metrics["val/macro_f1"], best_f1)
        if improved:
            best_f1 = metrics["val/macro_f1"]
        state["best_metric"] = best_f1
        if improved:
            save_checkpoint(state, checkpoint_dir / "best.pth")
        save_checkpoint(state, checkpoint_dir / "latest.pth")
        log.info("epoch %d/%d  train/loss %.4f  val/loss %.4f  species acc %.3f f1 %.3f  behavior acc %.3f f1 %.3f  "
                 "val/macro_f1 %.4f%s  (%.1fs)", epoch + 1, num_epochs, train_loss, metrics["val/loss"],
                 metrics["val/species_acc"], metrics["val/species_macro_f1"], metrics["val/behavior_acc"],
                 metrics["val/behavior_macro_f1"], metrics["val/macro_f1"], "  *best*" if improved else "",
                 time.perf_counter() - started)
        if stop_after is not None and epoch + 1 >= int(stop_after) and epoch + 1 < num_epochs:
            log.info("Stopping after epoch %d (training.stop_after_epoch); continue with resume=%s",
                     epoch + 1, checkpoint_dir / "latest.pth")
            break
    if OmegaConf.is_list(cfg.optimized_metric):
        return [_best_value(name, history) for name in cfg.optimized_metric]
    return _best_value(cfg.optimized_metric, history)


def _best_value(name: str, history: list[dict]) -> float:
    if not history or name not in history[0]:
        known = ", ".join(history[0]) if history else "none logged"
        raise ConfigError(f"optimized_metric={name} is not a logged metric (logged: {known}).")
    best = None
    for row in history:
        if metric_is_better(name, row[name], best):
            best = row[name]
    if best is None:  # NaN in every epoch: a failure (and a failed trial), not a result
        raise TrainingDiverged(f"{name} is NaN in every epoch.")
    return float(best)


def _log_run_setup(cfg, tracker: TrackedRun, model, classes, run_dir: Path, modalities) -> None:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tracker.log_params({**flatten_config(cfg), "modalities": "+".join(modalities),
                        "num_params_total": total, "num_params_trainable": trainable})
    tracker.set_tags({"hydra_overrides": hydra_overrides(), "git_commit": git_commit(), "run_dir": str(run_dir),
                      **{f"fallback.{name}": reason for name, reason in model.fallbacks.items()}})
    tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    tracker.log_text(json.dumps(classes.to_dict(), indent=2), "classes.json")
    log.info("Model: %s, %s parameters (%s trainable)", "+".join(modalities), f"{total:,}", f"{trainable:,}")
