"""Config mistakes caught at start, in one line that names the key, before any data or model is built.

``check_config`` is the one place for every check of a training config that needs neither data nor a
model; it returns the typed view (``mmbehave.core.settings``) the run then uses.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from mmbehave.core.errors import ConfigError
from mmbehave.core.precision import PRECISION_NAMES
from mmbehave.core.settings import CoreSettings, read_settings
from mmbehave.domain.heads import heads_from_config

# The `none` option of an encoder group targets this; everything else builds an encoder.
ABSENT_TARGET = "mmbehave.models.ablation.absent_modality"
MONITOR_MODES = ("max", "min")
FEATURE_CACHE_MODES = ("auto", "true", "false")
FROZEN_IN_CHECKPOINTS = ("copy", "reference")
PRUNERS = ("none", "median", "hyperband")


def configured_modalities(cfg: DictConfig) -> tuple[str, ...]:
    """("video", "audio") minus the modalities whose encoder group is set to `none`."""
    return tuple(m for m in ("video", "audio") if cfg[f"{m}_encoder"].get("_target_") != ABSENT_TARGET)


def _at_least(key: str, value, minimum) -> None:
    if value is not None and value < minimum:
        raise ConfigError(f"{key}={value} must be at least {minimum}.")


def _within(key: str, value, low, high, hint: str = "") -> None:
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{key}={value} must be in [{low}, {high}]{hint}.")


def check_mbt_exchange(num_layers: int, fusion_layer: int, num_bottlenecks: int, modalities: int = 2) -> None:
    """ConfigError unless MBT's bottlenecks can carry one modality's information to the other's CLS token:
    what a modality writes into them in one layer is read by the other in the next, so two fusion layers are
    needed. (mmbehave.models.mbt builds on this rule too.)"""
    if not 0 <= fusion_layer < num_layers:
        raise ConfigError(f"fusion.fusion_layer={fusion_layer} must be in [0, fusion.num_layers={num_layers}): the "
                          "layers before it are unimodal, the ones from it on exchange through the bottlenecks.")
    if modalities > 1 and num_bottlenecks > 0 and num_layers - fusion_layer < 2:
        raise ConfigError(f"fusion.num_layers={num_layers} with fusion.fusion_layer={fusion_layer} leaves "
                          f"{num_layers - fusion_layer} fusion layer(s), which exchange nothing: a bottleneck written "
                          "in one layer is read in the next. Raise fusion.num_layers (or lower fusion.fusion_layer), "
                          "or ask for late fusion with fusion.num_bottlenecks=0.")


def check_config(cfg: DictConfig) -> CoreSettings:
    """Raise ConfigError for the first value that cannot work; else the typed settings."""
    settings = read_settings(cfg)
    check_overrides(command_line_overrides(), cfg)
    if not configured_modalities(cfg):
        raise ConfigError("video_encoder=none and audio_encoder=none: at least one modality is needed.")
    check_heads(cfg)
    fusion = cfg.fusion
    if "num_heads" in fusion and fusion.hidden_dim % fusion.num_heads:
        raise ConfigError(f"fusion.hidden_dim={fusion.hidden_dim} is not divisible by fusion.num_heads={fusion.num_heads}.")
    if "fusion_layer" in fusion:
        check_mbt_exchange(fusion.num_layers, fusion.fusion_layer, fusion.num_bottlenecks, len(configured_modalities(cfg)))
    for group in ("video_encoder", "audio_encoder"):
        encoder = cfg[group]
        if encoder.get("freeze_backbone") and "pretrained" in encoder and not encoder.pretrained:
            raise ConfigError(f"{group}.freeze_backbone=true with {group}.pretrained=false would train on fixed random "
                              f"features; set {group}.pretrained=true (with its weights at hand) or leave it unfrozen.")
    video = cfg.video_encoder
    if "input_norm" in video:
        _one_of("video_encoder.input_norm", video.input_norm, ("fixed", "clip"))
    if "hidden_size" in video and "num_heads" in video and not video.get("pretrained") and video.hidden_size % video.num_heads:
        raise ConfigError(f"video_encoder.hidden_size={video.hidden_size} is not divisible by "
                          f"video_encoder.num_heads={video.num_heads}.")

    _check_training(settings.training)
    _check_optimizer_and_schedule(cfg)
    pruning = cfg.get("pruning")
    if pruning is not None:
        _one_of("pruning.pruner", pruning.pruner, PRUNERS)

    hardware = settings.hardware
    _one_of("hardware.precision", hardware.precision, PRECISION_NAMES)
    if hardware.precision == "fp16" and not hardware.device.startswith("cuda"):
        raise ConfigError("hardware.precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU.")
    _at_least("hardware.num_workers", hardware.num_workers, 0)
    _at_least("hardware.torch_threads", hardware.torch_threads, 1)
    if hardware.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"hardware.device={hardware.device} but torch sees no CUDA GPU; use hardware=cpu.")
    if cfg.resume and not Path(cfg.resume).is_file():
        raise ConfigError(f"resume={cfg.resume}: no such checkpoint file; pass the path of a checkpoints/latest.pth.")
    return settings


def _check_training(training) -> None:
    for key in ("num_epochs", "batch_size", "grad_accum_steps"):
        _at_least(f"training.{key}", getattr(training, key), 1)
    for key in ("limit_train_batches", "limit_val_batches", "stop_after_epoch", "early_stopping_patience"):
        _at_least(f"training.{key}", getattr(training, key), 1)
    for key in ("overfit_batches", "profile_steps"):
        _at_least(f"training.{key}", getattr(training, key), 0)
    if training.grad_clip_norm is not None and training.grad_clip_norm <= 0:
        raise ConfigError(f"training.grad_clip_norm={training.grad_clip_norm} must be > 0, or null to turn clipping off.")
    _within("training.modality_dropout", training.modality_dropout, 0.0, 1.0, " (a probability; 0 = off)")
    _one_of("training.feature_cache", training.feature_cache, FEATURE_CACHE_MODES)
    _one_of("training.frozen_in_checkpoints", training.frozen_in_checkpoints, FROZEN_IN_CHECKPOINTS)
    _one_of("training.monitor_mode", training.monitor_mode, MONITOR_MODES)
    if not training.monitor.startswith(("val/", "train/")):
        raise ConfigError(f"training.monitor={training.monitor} is not an epoch metric; use a val/... or train/... "
                          "metric such as val/macro_f1 or val/loss.")


def _one_of(key: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value} is not one of {', '.join(choices)}.")


def check_heads(cfg: DictConfig) -> None:
    """model.heads: present (null would mean the pre-heads default), names, types, and something to train."""
    if cfg.model.get("heads") is None:
        raise ConfigError("model.heads=null: a model needs its heads; pick a preset (model/heads=guide | field | "
                          "mammalps) or remove one head with model.heads.<name>=null.")
    heads = heads_from_config(cfg)  # names, types, weights
    if all(head.loss_weight == 0 for head in heads):
        raise ConfigError(f"every head's loss_weight is 0 ({', '.join(f'model.heads.{h.name}.loss_weight' for h in heads)}): "
                          "nothing would be trained. Give at least one head a weight above 0.")


def check_overrides(overrides: list[str], cfg: DictConfig) -> None:
    """Command-line overrides that look like they change something but do not: ``key={}`` on a mapping
    (Hydra merges a mapping into the one there, so ``model.heads={}`` keeps every head)."""
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if sep and value.replace(" ", "") == "{}" and OmegaConf.is_dict(OmegaConf.select(cfg, key)):
            hint = (" To drop a head use model.heads.<name>=null; to pick another set, model/heads=field."
                    if key == "model.heads" else f" To remove a key use {key}.<name>=null.")
            raise ConfigError(f"{key}={{}} changes nothing: Hydra merges a mapping into the one there, so "
                              f"{key} keeps {', '.join(OmegaConf.select(cfg, key).keys()) or 'its keys'}.{hint}")


def command_line_overrides() -> list[str]:
    """This run's overrides (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _check_optimizer_and_schedule(cfg: DictConfig) -> None:
    optimizer = cfg.optimizer
    lr = optimizer.get("lr")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr <= 0:
        raise ConfigError(f"optimizer.lr={lr} must be a positive number (e.g. 1e-3).")
    if "weight_decay" in optimizer:
        _at_least("optimizer.weight_decay", optimizer.weight_decay, 0)
    loss = cfg.training.loss
    for key in ("species_weight", "behavior_weight"):
        if key in loss:  # a config written before model.heads
            raise ConfigError(f"training.loss.{key} is now model.heads.{key.removesuffix('_weight')}.loss_weight "
                              "(every head has its own weight); move the value there.")
    if "label_smoothing" in loss:
        _within("training.loss.label_smoothing", loss.label_smoothing, 0.0, 0.99)
    schedule = cfg.training.lr_schedule
    if "warmup_epochs" in schedule:
        _at_least("training.lr_schedule.warmup_epochs", schedule.warmup_epochs, 0)
    if "min_lr_ratio" in schedule:
        _within("training.lr_schedule.min_lr_ratio", schedule.min_lr_ratio, 0.0, 1.0)
