"""Each measurement of ``python -m mmbehave.benchmark``: the real code's speed next to its bound, as a ratio.

Every function returns a dict of plain numbers (for the JSON) whose ``ratio`` and ``target`` keys make the
Markdown table. The real code runs as users run it: ``python -m mmbehave.train`` in a subprocess, timed from
the outside and from the per-epoch times it logs to MLflow (``time/train_s``, ``time/val_s``, ``time/save_s``).
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from mmbehave.core.precision import autocast
from mmbehave.perf.flops import count_flops, peak_flops
from mmbehave.perf.processes import run_command
from mmbehave.training.loop import batch_targets, model_inputs
from mmbehave.training.parts import TrainingParts

# What a training run of the default model imports before its first step: the bound its start-up is measured
# against (transformers loads a model's code on first use, so that import is named).
RUN_IMPORTS = ("import torch, torchvision.models, mlflow, mlflow.tracking, hydra, omegaconf, optuna, av, numpy, pandas, "
               "tqdm; from transformers import VideoMAEConfig, VideoMAEModel; from transformers.audio_utils import "
               "mel_filter_bank")


def train_command(overrides: list[str], work: Path, *extra: str) -> list[str]:
    return ["-m", "mmbehave.train", *overrides, f"hydra.run.dir={work / 'run'}", f"hydra.sweep.dir={work / 'sweep'}",
            f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}", "mlflow.experiment_name=benchmark", *extra]


def epoch_timings(tracking_uri: str) -> list[dict[str, float]]:
    """Per epoch of the store's one run, the times it logged: ``train_s`` (the training phase: loading,
    augmentation, steps, progress bar), ``val_s``, ``save_s`` and ``epoch_s`` (all of the epoch)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.search_runs([client.get_experiment_by_name("benchmark").experiment_id])[0]
    history = {key.split("/")[1]: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
               for key in ("time/train_s", "time/val_s", "time/save_s", "time/epoch_s")}
    return [{key: values[step] for key, values in history.items() if step in values} for step in sorted(history["train_s"])]


def real_loop(overrides: list[str], work: Path, epochs: int, batches: int, batch_size: int) -> dict:
    """The training command as users run it, in its own process: clips/s of the training phase of its fastest
    epoch after the first (``time/train_s``, as the run logs it), and of its fastest whole epoch (``time/epoch_s``:
    validation over the whole split, saves and logging too). The fastest, not the mean: the first epochs warm
    up (allocator, caches), and on a shared machine the slower ones also measure the neighbours."""
    run_command(train_command(overrides, work, f"training.num_epochs={epochs}",
                              f"training.limit_train_batches={batches}"), cwd=work)
    rows = epoch_timings(f"sqlite:///{work / 'mlflow.db'}")[1:]
    seconds, whole = min(row["train_s"] for row in rows), min(row["epoch_s"] for row in rows)
    mean = {key: sum(row[key] for row in rows) / len(rows) for key in ("val_s", "save_s")}
    return {"clips_per_s": batches * batch_size / seconds, "epoch_s": seconds, "whole_epoch_s": whole,
            "whole_clips_per_s": batches * batch_size / whole, **mean}


def startup(overrides: list[str], work: Path) -> dict:
    """The training command, from process start to its first training step (it logs when)."""
    finished = run_command(train_command(overrides, work, "training.num_epochs=1", "training.limit_train_batches=1",
                                         "training.limit_val_batches=1"), cwd=work)
    first_step = re.search(r"First training step done ([0-9.]+) s", finished.stdout + finished.stderr)
    return {"first_step_s": float(first_step.group(1)) if first_step else None, "peak_host_mib": finished.peak_mib}


def held_batches(parts: TrainingParts, count: int) -> list[dict]:
    """The first ``count`` training batches, loaded (and augmented) once and kept in memory."""
    return list(itertools.islice(iter(parts.train_loader), count))


def bare_steps(parts: TrainingParts, batches: list[dict], repeats: int) -> dict:
    """Forward, backward and optimizer step (with gradient clipping when the run clips: it belongs to the step)
    of the same model on batches already in memory: nothing else."""
    model, optimizer, loss_fn, step = parts.model, parts.optimizer, parts.loss_fn, parts.step
    model.train()
    inputs = [(model_inputs(b, step.device), batch_targets(b, step.device)) for b in batches]

    def one(batch) -> None:
        kwargs, targets = batch
        optimizer.zero_grad(set_to_none=True)
        with autocast(step.device, step.precision):
            output = model(**kwargs)
        loss, _ = loss_fn(output.logits, targets)
        loss.backward()
        if step.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip_norm)
        optimizer.step()

    for batch in inputs[:2]:  # warm-up: allocator, kernel choice
        one(batch)
    seconds = float("inf")
    for _ in range(repeats):  # the fastest pass, as for the real loop
        synchronize(step.device)
        started = time.perf_counter()
        for batch in inputs:
            one(batch)
        synchronize(step.device)
        seconds = min(seconds, time.perf_counter() - started)
    return {"clips_per_s": sum(len(b["clip_id"]) for b in batches) / seconds, "epoch_s": seconds}


def loader_speed(parts: TrainingParts, count: int) -> dict:
    """Clips per second the training loader delivers (reading, augmentation, collation), nothing consuming them."""
    started = time.perf_counter()
    clips = sum(len(batch["clip_id"]) for batch in itertools.islice(iter(parts.train_loader), count))
    return {"clips_per_s": clips / (time.perf_counter() - started)}


def import_seconds(work: Path) -> float:
    """A fresh interpreter importing what a run needs, and nothing else (the best start-up could do)."""
    return min(run_command(["-c", RUN_IMPORTS], cwd=work).seconds for _ in range(2))


def cache_bound(parts: TrainingParts, batch: dict) -> dict:
    """FLOPs of a training step with frozen encoders (encoder forward + fusion forward and backward) over those
    of a step on cached features (fusion forward and backward): the most a feature cache can speed a trial up."""
    model, step = parts.model, parts.step
    kwargs = model_inputs(batch, step.device)
    present = {m: kwargs[f"{m}_present"] for m in ("video", "audio") if f"{m}_present" in kwargs}
    raw = {m: kwargs[m] for m in ("video", "audio") if m in kwargs}
    with torch.no_grad():
        encoder_flops = count_flops(lambda: model.encode(**raw, present=present))
        tokens = model.encode(**raw, present=present)

    def fusion_step() -> None:
        output = model.classify_tokens(tokens, present)
        loss, _ = parts.loss_fn(output.logits, batch["targets"])
        loss.backward()

    fusion_flops = count_flops(fusion_step)

    def encoder_forward() -> None:
        with torch.no_grad():
            model.encode(**raw, present=present)

    # The same bound in seconds: the encoders (convolutions, one wide ViT) run more FLOPs a second than the
    # fusion's many small matrices, so a cached trial cannot reach the FLOPs bound; this is what it can reach.
    encoder_s, fusion_s = timed(encoder_forward, 7, 1, step.device), timed(fusion_step, 7, 1, step.device)
    model.zero_grad(set_to_none=True)
    return {"encoder_forward_gflops": encoder_flops / 1e9, "fusion_step_gflops": fusion_flops / 1e9,
            "bound": (encoder_flops + fusion_flops) / fusion_flops,
            "encoder_forward_ms": encoder_s * 1e3, "fusion_step_ms": fusion_s * 1e3,
            "time_bound": (encoder_s + fusion_s) / fusion_s}


def frozen_weights(cfg: DictConfig, folder: Path) -> list[str]:
    """Weights for the configured encoders saved as a lab keeps pretrained ones, and the overrides that freeze
    them: a frozen-backbone sweep costs the same with random weights as with real ones."""
    from torchvision.models import resnet18
    from transformers import VideoMAEConfig, VideoMAEModel

    video = cfg.video_encoder
    VideoMAEModel(VideoMAEConfig(num_frames=video.num_frames, image_size=video.image_size,
                                 tubelet_size=video.tubelet_size, patch_size=video.patch_size,
                                 hidden_size=video.hidden_size, num_hidden_layers=video.num_layers,
                                 num_attention_heads=video.num_heads, intermediate_size=video.intermediate_size)
                  ).save_pretrained(folder / "videomae")
    torch.save(resnet18(weights=None).state_dict(), folder / "resnet18.pth")
    return ["video_encoder=videomae_tiny", f"video_encoder.model_name={folder / 'videomae'}",
            f"audio_encoder.weights_path={folder / 'resnet18.pth'}"]


def sweep_with_and_without_cache(cfg: DictConfig, overrides: list[str], work: Path) -> dict:
    """Seconds per trial of the same fusion sweep over frozen backbones (hparams_search=mbt_frozen), with the
    feature cache and without it, and each whole sweep (the cached one builds its cache inside it)."""
    bench = cfg.benchmark
    weights = frozen_weights(cfg, work / "weights")
    # The trials' model is the one the FLOPs bound was counted on (the preset would pool VideoMAE's tokens).
    weights.append(f"video_encoder.token_pool=[{','.join(str(k) for k in cfg.video_encoder.token_pool)}]")
    per_trial = {}
    for mode in ("false", "true"):
        folder = work / f"cache_{mode}"
        finished = run_command(train_command(
            overrides, folder, "hparams_search=mbt_frozen", *weights, f"hydra.sweeper.n_trials={bench.sweep_trials}",
            "hydra.sweeper.n_jobs=1", f"hydra.sweeper.storage=sqlite:///{folder / 'optuna.db'}",
            f"training.num_epochs={bench.sweep_epochs}", f"training.feature_cache={mode}",
            f"training.feature_cache_dir={folder / 'cache'}"), cwd=folder)
        # Per trial on Optuna's clock: the sweep process's start and the one-time cache build are not a trial's.
        per_trial[mode] = trial_times(f"sqlite:///{folder / 'mlflow.db'}", f"sqlite:///{folder / 'optuna.db'}")
        per_trial[mode]["sweep_s"] = finished.seconds
    off, on = per_trial["false"], per_trial["true"]
    return {"trial_s_cache_off": off["trial_s"], "trial_s_cache_on": on["trial_s"], "speedup": off["trial_s"] / on["trial_s"],
            "fixed_s_cache_on": on["trial_fixed_s"], "epochs_s_cache_on": on["trial_epochs_s"],
            "sweep_s_cache_off": off["sweep_s"], "sweep_s_cache_on": on["sweep_s"]}


def gpu_utilisation(parts: TrainingParts, batches: list[dict], seconds_per_epoch: float) -> dict:
    """Model FLOPs utilisation of the bare step: counted FLOPs per second over the device's dense bf16 peak."""
    peak = peak_flops(parts.step.device)
    if peak is None:
        return {}
    model = parts.model

    def step() -> None:
        kwargs = model_inputs(batches[0], parts.step.device)
        with autocast(parts.step.device, parts.step.precision):
            output = model(**kwargs)
        loss, _ = parts.loss_fn(output.logits, batch_targets(batches[0], parts.step.device))
        loss.backward()

    flops_per_batch = count_flops(step)
    achieved = flops_per_batch * len(batches) / seconds_per_epoch
    return {"tflops": achieved / 1e12, "mfu": achieved / peak,
            "peak_gpu_mib": torch.cuda.max_memory_allocated(parts.step.device) / 2**20}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def trial_times(tracking_uri: str, storage: str, study_name: str = "mbt_frozen") -> dict:
    """Mean seconds per trial (Optuna's clock), and of those, the fusion's epochs (train + validation, as the
    trials logged them); the rest is each trial's fixed part."""
    import optuna
    from mlflow.tracking import MlflowClient

    study = optuna.load_study(study_name=study_name, storage=storage)
    done = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done) / len(done)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("benchmark").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    epochs = [sum(m.value for key in ("time/train_s", "time/val_s") for m in client.get_metric_history(r.info.run_id, key))
              for r in children]
    compute = sum(epochs) / len(epochs)
    return {"trial_s": wall, "trial_epochs_s": compute, "trial_fixed_s": wall - compute}
