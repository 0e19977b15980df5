"""A whole pretraining run: config in, pretrained encoders out, everything in MLflow.

    settings (every check) ─► resume plan (refusals first) ─► the clips (decoded once) ─► encoders + decoder
    ─► epochs: masked video + audio-visual contrastive (objectives.py), latest.pth after each (atomic)
    ─► the encoders written for loading as pretrained weights (outputs.py), their digests in the run

SIGTERM and Ctrl-C end the run KILLED with its last epoch saved; the command prints the ``resume=`` command. A
run killed outright (kill -9) continues the same way from its last latest.pth.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from mmbehave.checkpoints.files import remove_stale_temp_files, save_checkpoint
from mmbehave.core.atomic import write_text_atomic
from mmbehave.core.instantiate import build
from mmbehave.core.progress import show_progress
from mmbehave.core.redact import redact
from mmbehave.core.signals import signals_held, stop_on_signals
from mmbehave.data.prepared import make_loader, preprocess_values
from mmbehave.models.precision_plan import encoder_gflop, example_inputs, plan_parts
from mmbehave.pretraining.checkpoint import KIND, check_same_settings, read_latest
from mmbehave.pretraining.clips import PretrainClips, pretrain_clips
from mmbehave.pretraining.objectives import PretrainingModel
from mmbehave.pretraining.outputs import AUDIO_FILE, VIDEO_FOLDER, write_audio_encoder, write_video_encoder
from mmbehave.pretraining.settings import PretrainSettings, read_pretrain_settings
from mmbehave.tracking.runs import TrackedRun, flatten_config, git_commit, hydra_overrides
from mmbehave.tracking.store import resolve_tracking_uri
from mmbehave.training.parts import parameter_groups
from mmbehave.training.resume import logged_epochs
from mmbehave.training.schedule import warmup_cosine_schedule
from mmbehave.training.seeding import epoch_seed, restore_rng_states, rng_states, seed_everything

log = logging.getLogger(__name__)


def run_pretraining(cfg: DictConfig) -> Path:
    """The folder the pretrained encoders were written to (``<run>/pretrained``)."""
    settings = read_pretrain_settings(cfg)
    if settings.hardware.torch_threads:
        torch.set_num_threads(settings.hardware.torch_threads)
    seed_everything(settings.seed)
    fingerprint = settings_fingerprint(cfg, settings)
    resumed = read_latest(settings.resume) if settings.resume else None
    if resumed:
        check_same_settings(settings.resume, resumed["fingerprint"], fingerprint)
    run_dir = settings.resume.resolve().parent.parent if settings.resume else settings.output_dir
    model = build_model(cfg, settings)  # before any clip is read: an encoder that cannot be pretrained is one line
    clips = pretrain_clips(settings, cfg.data)
    device = torch.device(settings.hardware.device)
    model.to(device)
    plan = plan_parts([f"{m}_encoder" for m in settings.modalities], settings.hardware.precision, device,
                      lambda: encoder_gflop(model.encoders(), example_inputs(settings.data.preprocess,
                                                                             settings.modalities))[0],
                      settings.hardware.bf16_min_gflop)
    log.info("%s", plan.line())
    remove_stale_temp_files(run_dir / "checkpoints")
    with stop_on_signals(lambda: resume_hint(run_dir)), \
            TrackedRun(resolve_tracking_uri(settings.mlflow.tracking_uri), settings.mlflow.experiment_name,
                       settings.mlflow.run_name, run_id=resumed["mlflow_run_id"] if resumed else None) as tracker:
        if not resumed:
            record_setup(tracker, settings, clips, plan, run_dir)
        epochs = Epochs(settings, model, clips, plan.parts, device)
        if resumed:
            epochs.restore(resumed)
            backfill(tracker, epochs.history)
            log.info("Resumed from %s at epoch %d (MLflow run %s)", settings.resume, epochs.start + 1, tracker.run_id)
        finished = epochs.run(tracker, run_dir, fingerprint)
        if not finished:
            tracker.end_as("KILLED", {"stopped": f"pretrain.stop_after_epoch={settings.options.stop_after_epoch}"})
            print(resume_hint(run_dir))
            return run_dir / "pretrained"
        out = write_outputs(cfg, settings, model, run_dir, tracker)
        summarise(settings, out, tracker, epochs.history[-1])  # every epoch done: there is a last one
    return out


def settings_fingerprint(cfg: DictConfig, settings: PretrainSettings) -> dict:
    """What the weights depend on: a resumed run must have the same (stop_after_epoch and resume may differ)."""
    # num_epochs may grow (more epochs on the new schedule, as train's resume allows); where it stops may differ
    options = {k: v for k, v in asdict(settings.options).items()
               if k not in ("stop_after_epoch", "cache_dir", "num_epochs")}
    return {"input": settings.input, "seed": settings.seed, "pretrain": json.dumps(options, sort_keys=True),
            "video_encoder": json.dumps(OmegaConf.to_container(cfg.video_encoder, resolve=True), sort_keys=True),
            "audio_encoder": json.dumps(OmegaConf.to_container(cfg.audio_encoder, resolve=True), sort_keys=True),
            "data.root": str(settings.data.root), "data.labels_dir": str(settings.data.labels_dir),
            "preprocessing": json.dumps(preprocess_values(settings.data.preprocess), sort_keys=True)}


def build_model(cfg: DictConfig, settings: PretrainSettings) -> PretrainingModel:
    log.info("Instantiating video encoder <%s>", cfg.video_encoder._target_)
    video = build(cfg.video_encoder)
    audio = None
    if "audio" in settings.modalities:
        log.info("Instantiating audio encoder <%s>", cfg.audio_encoder._target_)
        audio = build(cfg.audio_encoder)
    options = settings.options
    return PretrainingModel(video, audio, decoder=options.decoder, norm_pix_loss=options.norm_pix_loss,
                            projection_dim=options.projection_dim, contrastive=settings.contrastive)


def record_setup(tracker: TrackedRun, settings: PretrainSettings, clips: PretrainClips, plan, run_dir: Path) -> None:
    options = settings.options
    objective = f"masked video (tube masking, ratio {options.mask_ratio:g})"
    if settings.contrastive:
        objective += f" + {options.contrastive_weight:g} x audio-visual InfoNCE (temperature {options.temperature:g})"
    tracker.log_params({**flatten_config(settings.record.resolved), **plan.params(), "pretrain/objective": objective,
                        "pretrain/clips": len(clips.dataset), "pretrain/clips_with_audio": clips.with_audio,
                        "pretrain/clips_unreadable": len(clips.errors)})
    tracker.set_tags({"command": "pretrain", "pretrain_source": redact(clips.source)[:5000], "run_dir": str(run_dir),
                      "hydra_overrides": redact(hydra_overrides()), "git_commit": git_commit()})
    tracker.log_text(settings.record.yaml(), "config.yaml")
    if len(clips.errors):
        errors = run_dir / "unreadable_clips.csv"
        write_text_atomic(errors, clips.errors.to_csv(index=False))
        tracker.log_artifact(errors)
        log.warning("%d clip(s) could not be read; the reasons are in %s", len(clips.errors), errors)


class Epochs:
    """The optimisation: AdamW with warmup and cosine decay, one latest.pth per epoch."""

    def __init__(self, settings: PretrainSettings, model: PretrainingModel, clips: PretrainClips,
                 precision: dict[str, str], device: torch.device):
        options = settings.options
        self.settings, self.model, self.precision, self.device = settings, model, precision, device
        self.generator = torch.Generator()
        self.loader = make_loader(clips.dataset, options.batch_size, shuffle=True, generator=self.generator,
                                  num_workers=settings.hardware.num_workers)
        self.optimizer = torch.optim.AdamW(parameter_groups(model), lr=options.lr, betas=(0.9, 0.95),
                                           weight_decay=options.weight_decay)
        self.scheduler = warmup_cosine_schedule(self.optimizer, steps_per_epoch=len(self.loader),
                                                num_epochs=options.num_epochs, warmup_epochs=options.warmup_epochs,
                                                min_lr_ratio=options.min_lr_ratio)
        self.mask_generator = torch.Generator()
        self.start, self.history = 0, []

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"])
        self.start, self.history = state["epoch"] + 1, list(state["history"])

    def run(self, tracker: TrackedRun, run_dir: Path, fingerprint: dict) -> bool:
        """True when every epoch is done; False when pretrain.stop_after_epoch ended this invocation first."""
        options = self.settings.options
        for epoch in range(self.start, options.num_epochs):
            metrics = self.epoch(epoch)
            self.history.append({"epoch": epoch, **metrics})
            log.info("epoch %d/%d: %s", epoch + 1, options.num_epochs,
                     ", ".join(f"{key.split('/')[-1]} {value:.4g}" for key, value in metrics.items()))
            self.save(run_dir / "checkpoints" / "latest.pth", epoch, tracker.run_id, fingerprint)
            with signals_held():
                tracker.log_metrics(metrics, step=epoch)
            if options.stop_after_epoch is not None and epoch + 1 >= options.stop_after_epoch \
                    and epoch + 1 < options.num_epochs:
                return False
        return True

    def epoch(self, epoch: int) -> dict[str, float]:
        options, model = self.settings.options, self.model
        model.train()
        self.generator.manual_seed(epoch_seed(self.settings.seed, epoch))  # the same order after a resume
        self.mask_generator.manual_seed(epoch_seed(self.settings.seed + 1, epoch))
        sums = {"masked": 0.0, "contrastive": 0.0, "retrieval": 0.0}
        counts = {"masked": 0, "contrastive": 0}
        started, clips = time.perf_counter(), 0
        for batch in tqdm(self.loader, desc=f"pretrain epoch {epoch + 1}/{options.num_epochs}", leave=False,
                          disable=not show_progress()):
            batch = {key: value.to(self.device) if torch.is_tensor(value) else value for key, value in batch.items()}
            losses = model(batch, mask_ratio=options.mask_ratio, temperature=options.temperature,
                           contrastive_weight=options.contrastive_weight, precision=self.precision,
                           generator=self.mask_generator)
            total = float(losses.total.detach())
            if not math.isfinite(total):
                raise FloatingPointError(f"pretraining loss became {total} at epoch {epoch + 1}; lower "
                                         f"pretrain.lr (now {options.lr:g}) or use hardware.precision=fp32.")
            self.optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            if options.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip_norm)
            self.optimizer.step()
            self.scheduler.step()
            sums["masked"] += losses.masked
            counts["masked"] += 1
            if losses.contrastive is not None:
                sums["contrastive"] += losses.contrastive
                sums["retrieval"] += losses.retrieval
                counts["contrastive"] += 1
            clips += len(batch["clip_id"])
        seconds = time.perf_counter() - started
        metrics = {"pretrain/masked_loss": sums["masked"] / max(counts["masked"], 1),
                   "pretrain/lr": self.scheduler.get_last_lr()[0], "pretrain/epoch_s": seconds,
                   "pretrain/clips_per_s": clips / seconds}
        if counts["contrastive"]:
            metrics["pretrain/contrastive_loss"] = sums["contrastive"] / counts["contrastive"]
            metrics["pretrain/retrieval_top1"] = sums["retrieval"] / counts["contrastive"]
        return metrics

    def save(self, path: Path, epoch: int, run_id: str | None, fingerprint: dict) -> None:
        save_checkpoint({"kind": KIND, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "scheduler": self.scheduler.state_dict(), "epoch": epoch, "history": self.history,
                         "fingerprint": json.dumps(fingerprint, sort_keys=True), "mlflow_run_id": run_id,
                         "rng": rng_states()}, path)


def backfill(tracker: TrackedRun, history: list[dict]) -> None:
    """Log the saved epochs MLflow lacks: a run killed between an epoch's save and its logging."""
    logged = set(logged_epochs(tracker.tracking_uri, tracker.run_id, "pretrain/masked_loss"))
    missing = [row for row in history if row["epoch"] not in logged]
    for row in missing:
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
    if missing:
        log.info("Logged %d epoch(s) MLflow had missed: %s", len(missing), [row["epoch"] + 1 for row in missing])


def native_grid(cfg: DictConfig, model: PretrainingModel) -> tuple[int, int] | None:
    """(num_frames, image_size) of the checkpoint the video encoder came from, when its positions were resized."""
    if "position_table" not in model.video_encoder._buffers:
        return None
    from transformers import VideoMAEConfig

    from mmbehave.models.pretrained import load_hf_pretrained

    native = load_hf_pretrained(VideoMAEConfig.from_pretrained, str(cfg.video_encoder.model_name))
    return int(native.num_frames), native.image_size


def write_outputs(cfg: DictConfig, settings: PretrainSettings, model: PretrainingModel, run_dir: Path,
                  tracker: TrackedRun) -> Path:
    out = run_dir / "pretrained"
    digests = {"pretrained.video_sha256": write_video_encoder(model.video_encoder, out / VIDEO_FOLDER,
                                                              native_grid(cfg, model))}
    if model.audio_encoder is not None:
        audio = write_audio_encoder(model.audio_encoder, out / AUDIO_FILE)
        if audio is None:
            log.warning("audio_encoder <%s> has no pretrained-weights file format: its pretraining shaped the video "
                        "encoder (through the contrastive half) but its own weights are not written",
                        cfg.audio_encoder._target_)
        else:
            digests["pretrained.audio_sha256"] = audio
    with signals_held():
        tracker.set_tags({**digests, "pretrained.folder": str(out)})
        tracker.log_artifact(out / VIDEO_FOLDER / "config.json")
    return out


def summarise(settings: PretrainSettings, out: Path, tracker: TrackedRun, last: dict[str, float]) -> None:
    from mmbehave.core.summary import print_summary

    made = [("video encoder", str(out / VIDEO_FOLDER)),
            ("last masked loss", f"{last['pretrain/masked_loss']:.4f}"),
            ("MLflow run", f"{tracker.run_id} in {redact(tracker.tracking_uri)}")]
    audio = out / AUDIO_FILE
    if audio.is_file():
        made.insert(1, ("audio encoder", str(audio)))
    if "pretrain/retrieval_top1" in last:
        made.insert(-1, ("sound ↔ picture top-1", f"{last['pretrain/retrieval_top1']:.3f} in a batch of "
                                                  f"{settings.options.batch_size}"))
    command = f"python -m mmbehave.train video_encoder.pretrained=true video_encoder.model_name={out / VIDEO_FOLDER}"
    if audio.is_file():
        command += f" audio_encoder.pretrained=true audio_encoder.weights_path={audio}"
    print_summary("Pretraining done.", made, [command])


def resume_hint(run_dir: Path) -> str:
    latest = run_dir / "checkpoints" / "latest.pth"
    if not latest.is_file():
        return "no epoch was finished, so there is nothing to resume: start the run again"
    overrides = [o for o in hydra_overrides().split() if not o.startswith("resume=")]
    return redact(" ".join(["continue with: python -m mmbehave.pretrain", f"resume={latest}", *overrides]))
