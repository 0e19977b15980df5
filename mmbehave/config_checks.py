"""Config mistakes caught at start, in one line that names the key, before any data or model is built."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mmbehave.training.loop import PRECISIONS

# The `none` option of an encoder group targets this; everything else builds an encoder.
ABSENT_TARGET = "mmbehave.models.ablation.absent_modality"


class ConfigError(ValueError):
    """A config value that cannot work. The message names the key and a fix."""


def configured_modalities(cfg: DictConfig) -> tuple[str, ...]:
    """("video", "audio") minus the modalities whose encoder group is set to `none`."""
    return tuple(m for m in ("video", "audio") if cfg[f"{m}_encoder"].get("_target_") != ABSENT_TARGET)


def check_config(cfg: DictConfig) -> None:
    if not configured_modalities(cfg):
        raise ConfigError("video_encoder=none and audio_encoder=none: at least one modality is needed.")
    fusion = cfg.fusion
    if "num_heads" in fusion and fusion.hidden_dim % fusion.num_heads:
        raise ConfigError(f"fusion.hidden_dim={fusion.hidden_dim} is not divisible by fusion.num_heads={fusion.num_heads}.")
    video = cfg.video_encoder
    if "hidden_size" in video and "num_heads" in video and not video.get("pretrained") and video.hidden_size % video.num_heads:
        raise ConfigError(f"video_encoder.hidden_size={video.hidden_size} is not divisible by video_encoder.num_heads={video.num_heads}.")
    training = cfg.training
    for key in ("num_epochs", "batch_size", "grad_accum_steps"):
        if int(training[key]) < 1:
            raise ConfigError(f"training.{key}={training[key]} must be at least 1.")
    precision = cfg.hardware.precision
    if precision not in PRECISIONS:
        raise ConfigError(f"hardware.precision={precision} is not one of {', '.join(PRECISIONS)}.")
    if precision == "fp16" and not str(cfg.hardware.device).startswith("cuda"):
        raise ConfigError("hardware.precision=fp16 needs a CUDA device; use bf16 or fp32 on CPU.")
    if str(cfg.hardware.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"hardware.device={cfg.hardware.device} but torch sees no CUDA GPU; use hardware=cpu.")
    if cfg.resume and not Path(cfg.resume).is_file():
        raise ConfigError(f"resume={cfg.resume}: no such checkpoint file; pass the path of a checkpoints/latest.pth.")
