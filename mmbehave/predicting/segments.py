"""A clip longer than the model's input, cut into windows that are each predicted on their own.

    segment_windows(duration 3.0, length 1.0, stride 1.0) -> [(0, 1), (1, 2), (2, 3)]
    segment_windows(duration 3.5, length 1.0, stride 1.0) -> [(0, 1), (1, 2), (2, 3), (2.5, 3.5)]  tail covered
    iter_segments(path, settings, length, stride)         -> Segment(start, end, ProcessedClip) per window

A model trained on 1-second clips sees a 30-second clip, preprocessed whole, as 8 frames spread over 30 s and
its first second of sound: most of what happened is lost. Each window here is preprocessed exactly as training
preprocessing (``mmbehave.data.preprocessing.preprocess_clip``) would preprocess a clip cut to that window:
``num_frames`` frames sampled uniformly from the frames inside it (inside ``frame_window``, counted from the
window's start, when the model was trained with one), and its sound from the window's start, cropped or
zero-padded to the model's ``clip_seconds``. The file is decoded once, for all its windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mmbehave.core.errors import ClipReadError
from mmbehave.data.clip_inputs import PreprocessSettings, ProcessedClip, black_frames
from mmbehave.data.clip_reader import read_clip
from mmbehave.data.mel import log_mel_spectrogram

# A tail this short past the last regular window (encoder padding, rounding) gets no window of its own.
TAIL_TOLERANCE_SECONDS = 0.05
# Windows are half-open [start, end), as a clip cut at `end` would be; clip_io's windows include their end.
HALF_OPEN = 1e-6


@dataclass(frozen=True)
class Segment:
    start: float           # seconds on the clip's timeline
    end: float
    clip: ProcessedClip    # the model's inputs for this window, as preprocess_clip makes them


def segment_windows(duration: float, length: float, stride: float) -> list[tuple[float, float]]:
    """Windows [0, L), [s, s+L), ... over a clip of ``duration`` s, plus one aligned to the clip's end when the
    regular ones leave its tail uncovered. A clip no longer than one window is one window [0, L), as today."""
    if duration <= length + TAIL_TOLERANCE_SECONDS:
        return [(0.0, length)]
    count = math.floor((duration - length) / stride + 1e-9) + 1  # starts k * stride (no float drift)
    windows = [(k * stride, k * stride + length) for k in range(count)]
    if duration - windows[-1][1] > TAIL_TOLERANCE_SECONDS:
        windows.append((duration - length, duration))
    return windows


def iter_segments(path: Path, settings: PreprocessSettings, length: float, stride: float,
                  threads: int = 1) -> Iterator[Segment]:
    """The model's inputs for each window of ``path``, in time order, from one pass over the file. Raises
    ClipReadError as preprocess_clip."""
    windows: list[tuple[float, float]] = []

    def frame_windows(seconds: float) -> list[tuple[float, float]]:  # known once the file is demuxed
        windows.extend(segment_windows(seconds, length, stride))
        return [_frame_window(start, end, settings.frame_window) for start, end in windows]

    clip = read_clip(path, num_frames=settings.num_frames, image_size=settings.image_size, windows=frame_windows,
                     sample_rate=settings.sample_rate, clip_seconds=None, threads=threads)
    has_video, waveform = clip.has_video, clip.waveform
    if not has_video and waveform is None:
        raise ClipReadError(path, "neither a video nor an audio stream")
    sound_seconds = min(length, settings.clip_seconds)  # a window shorter than the model's input is padded
    frames = clip.frames if has_video else [black_frames(settings)] * len(windows)
    for (start, end), window_frames in zip(windows, frames):
        sound = _window_sound(waveform, start, sound_seconds, settings)
        mel = log_mel_spectrogram(sound, settings.sample_rate, settings.n_mels, settings.n_fft, settings.hop_length)
        yield Segment(start, end, ProcessedClip(window_frames, mel, has_video, waveform is not None))


def _frame_window(start: float, end: float, frame_window: tuple[float, float] | None) -> tuple[float, float]:
    """The frames a clip cut to [start, end) would offer training's sampler, on the file's timeline."""
    first, last = (0.0, end - start) if frame_window is None else frame_window
    return start + first, min(start + last, end - HALF_OPEN)


def _window_sound(waveform: np.ndarray | None, start: float, seconds: float,
                  settings: PreprocessSettings) -> np.ndarray:
    """The window's sound, zero-padded to the model's clip_seconds (silence when the file has no audio)."""
    sound = np.zeros(int(round(settings.sample_rate * settings.clip_seconds)), np.float32)
    if waveform is not None:
        first = int(round(start * settings.sample_rate))
        piece = waveform[first:first + int(round(seconds * settings.sample_rate))]
        sound[:len(piece)] = piece
    return sound
