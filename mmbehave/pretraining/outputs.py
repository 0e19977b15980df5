"""The pretrained encoders, written where the ordinary loading reads pretrained weights from.

    <run>/pretrained/video/            a VideoMAE folder (config.json, model.safetensors, preprocessor_config.json):
        python -m mmbehave.train video_encoder.pretrained=true video_encoder.model_name=<run>/pretrained/video
    <run>/pretrained/audio_resnet18.pth  a torchvision ResNet18 state_dict (tensors only):
        python -m mmbehave.train audio_encoder.pretrained=true audio_encoder.weights_path=<run>/pretrained/audio_resnet18.pth

Both load through today's trusted paths (safetensors; ``torch.load(weights_only=True)``): nothing in them can run.
The decoder and the projections are not written: fine-tuning never uses them (latest.pth keeps them for resume).
Each output appears whole or not at all (written beside, then renamed into place).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from mmbehave.core.atomic import atomic_path
from mmbehave.core.digests import file_sha256
from mmbehave.models.audio_encoders import ResNetAudioEncoder
from mmbehave.models.video_encoders import VideoMAEEncoder

VIDEO_FOLDER, AUDIO_FILE = "video", "audio_resnet18.pth"


def write_video_encoder(encoder: VideoMAEEncoder, folder: Path, native_grid: tuple[int, int] | None) -> str:
    """The encoder as a VideoMAE folder; the SHA-256 of its weights file. ``native_grid``: (num_frames, image_size)
    of the checkpoint it started from when its positions were resized from that grid: the folder keeps that grid,
    so a later load resizes the same fixed positions the same way (the weights do not depend on it)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with _quiet_saving():
            encoder.backbone.save_pretrained(staging, safe_serialization=True)
        config_path = staging / "config.json"
        config = json.loads(config_path.read_text())
        if native_grid is not None:
            config["num_frames"], config["image_size"] = native_grid
        config_path.write_text(json.dumps(config, indent=2))
        statistics = {"image_mean": encoder.normalize.mean.flatten().tolist(),
                      "image_std": encoder.normalize.std.flatten().tolist(),
                      "mmbehave": "pretrained in-domain by python -m mmbehave.pretrain"}
        (staging / "preprocessor_config.json").write_text(json.dumps(statistics, indent=2))
        digest = file_sha256(staging / "model.safetensors")
        _readable_as_plain_files(staging)
        _swap_in(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return digest


@contextlib.contextmanager
def _quiet_saving():
    """transformers' shard-writing bar would break the pretrain command's own progress lines."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _readable_as_plain_files(folder: Path) -> None:
    """The permissions a plain mkdir / open give (mkdtemp and transformers make them private), so a shared
    output folder stays readable by the group."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _swap_in(staging: Path, folder: Path) -> None:
    """``staging`` under ``folder``'s name; an earlier ``folder`` moved aside first and removed after."""
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def torchvision_state_dict(encoder: ResNetAudioEncoder) -> dict[str, torch.Tensor]:
    """The encoder's weights under torchvision's ResNet18 names, as ``audio_encoder.weights_path`` reads them:
    the one-channel stem spread over RGB (a third each, so the loader's sum over RGB gives it back exactly) and a
    zero 1000-way fc, which the encoder drops."""
    state = {}
    for name, tensor in encoder.backbone.state_dict().items():
        if name == "conv1.weight":
            tensor = tensor.repeat(1, 3, 1, 1) / 3
        state[name] = tensor.detach().cpu().clone()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    return state


def write_audio_encoder(encoder: nn.Module, path: Path) -> str | None:
    """The audio encoder as a torchvision ResNet18 file; its SHA-256, or None for an encoder with no such file."""
    if not isinstance(encoder, ResNetAudioEncoder):
        return None
    with atomic_path(path) as temp:
        torch.save(torchvision_state_dict(encoder), temp)
    return file_sha256(path)
