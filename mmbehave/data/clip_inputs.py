"""One clip's files -> the model's inputs, with the settings that decide them (the training preprocessing).

    PreprocessSettings ─► preprocess_clip(video, audio) ─► ProcessedClip(frames uint8 T x C x H x W, log-mel
                                                          n_mels x time, has_video, has_audio)

Preprocessing a dataset (``preprocessing.py``), predict and the benchmarks all read clips through here, so the
model sees at inference what it saw in training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

from mmbehave.core.errors import ClipReadError
from mmbehave.data.clip_reader import read_audio, read_clip
from mmbehave.data.mel import log_mel_spectrogram

# Bump when the same settings would produce different files (a code change), so old outputs are redone.
PREPROCESS_VERSION = 1
SETTINGS_COLUMNS = ("num_frames", "image_size", "frame_window", "sample_rate", "clip_seconds", "n_mels",
                    "n_fft", "hop_length")


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything that decides what a clip's processed files contain (the ``data`` config keys)."""

    num_frames: int                              # frames sampled uniformly per clip
    image_size: int                              # square side after short-side resize + centre crop
    frame_window: tuple[float, float] | None     # (start_s, end_s) to sample frames from; None = whole clip
    sample_rate: int                             # Hz, mono
    clip_seconds: float                          # audio cropped / zero-padded to this
    n_mels: int
    n_fft: int
    hop_length: int

    def __post_init__(self) -> None:
        # Normalise types so that `4` and `4.0` in YAML give the same fingerprint.
        for name in ("num_frames", "image_size", "sample_rate", "n_mels", "n_fft", "hop_length"):
            value = getattr(self, name)
            if int(value) != value or value <= 0:
                raise ValueError(f"preprocessing setting {name} must be a positive integer; got {value!r}")
            object.__setattr__(self, name, int(value))
        if not float(self.clip_seconds) > 0:
            raise ValueError(f"preprocessing setting clip_seconds must be > 0; got {self.clip_seconds!r}")
        object.__setattr__(self, "clip_seconds", float(self.clip_seconds))
        if self.frame_window is not None:
            window = tuple(float(v) for v in self.frame_window)
            if len(window) != 2 or not 0 <= window[0] < window[1]:
                raise ValueError(f"frame_window must be null or [start_s, end_s] with 0 <= start < end; "
                                 f"got {self.frame_window!r}")
            object.__setattr__(self, "frame_window", window)

    @classmethod
    def from_config(cls, data_cfg: Mapping[str, Any]) -> PreprocessSettings:
        """Pick the settings out of the ``data`` config (a DictConfig or dict); other keys are ignored. A missing
        or mistyped one is a ConfigError naming ``data.<key>``."""
        from mmbehave.core.settings import typed_view

        return typed_view(cls, {f.name: data_cfg[f.name] for f in dataclasses.fields(cls) if f.name in data_cfg}, "data")

    def fingerprint(self) -> str:
        """12 hex digits, stable across runs and machines, changing with any setting or PREPROCESS_VERSION."""
        payload = json.dumps({**dataclasses.asdict(self), "version": PREPROCESS_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def manifest_values(self) -> dict[str, str]:
        """The settings as manifest cells (frame_window as ``[start, end]`` or empty), plus the fingerprint."""
        values = {name: str(getattr(self, name)) for name in SETTINGS_COLUMNS}
        values["frame_window"] = json.dumps(list(self.frame_window)) if self.frame_window else ""
        values["fingerprint"] = self.fingerprint()
        return values


class ProcessedClip(NamedTuple):
    frames: torch.Tensor   # uint8 (num_frames, 3, image_size, image_size); black if the file has no video
    mel: np.ndarray        # float32 (n_mels, 1 + samples // hop_length); silence if the clip has no audio
    has_video: bool
    has_audio: bool

    @property
    def status(self) -> str:
        return "ok" if self.has_video and self.has_audio else ("no_video" if self.has_audio else "no_audio")


def black_frames(settings: PreprocessSettings) -> torch.Tensor:
    """What a clip without video shows the model: black frames of the model's shape."""
    return torch.zeros(settings.num_frames, 3, settings.image_size, settings.image_size, dtype=torch.uint8)


def preprocess_clip(video: Path, audio: Path | None, settings: PreprocessSettings, threads: int = 1) -> ProcessedClip:
    """One raw clip -> model inputs, with which modalities it really has.

    ``video`` is the clip's media file: a video, or an audio file (a passive acoustic recorder's), which
    gets black frames and has_video False. ``audio`` is a separate audio file, or None for the media file's
    own track; a clip without one gets the spectrogram of silence and has_audio False. Every clip gets the
    same shapes. Raises ``ClipReadError`` for files that cannot be decoded, or that hold neither modality.
    ``threads``: decoder threads (1 where several clips are read side by side).
    """
    clip = read_clip(video, num_frames=settings.num_frames, image_size=settings.image_size,
                     windows=[settings.frame_window], sample_rate=None if audio else settings.sample_rate,
                     clip_seconds=settings.clip_seconds, threads=threads)
    has_video = clip.has_video
    frames = clip.frames[0] if has_video else black_frames(settings)
    waveform = clip.waveform if audio is None else read_audio(audio, settings.sample_rate, settings.clip_seconds)
    if waveform is None and audio is not None:
        raise ClipReadError(audio, "no audio stream (this is the clip's audio_path)")
    has_audio = waveform is not None
    if not has_video and not has_audio:
        raise ClipReadError(video, "neither a video nor an audio stream")
    if waveform is None:
        waveform = np.zeros(int(round(settings.sample_rate * settings.clip_seconds)), np.float32)
    mel = log_mel_spectrogram(waveform, settings.sample_rate, settings.n_mels, settings.n_fft, settings.hop_length)
    return ProcessedClip(frames, mel, has_video, has_audio)
