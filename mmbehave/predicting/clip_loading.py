"""Clips read in worker processes while the main process runs the model: a DataLoader over the file list.

    files ─► ClipFiles[i] (in a worker: read_clip, one pass, only the frames needed) ─► ClipItem
          ─► main process: windows batched across clips ─► model

A clip that cannot be read comes back as a ClipItem with its ``error`` (the reason), never as an exception:
one odd file must not stop an archive. Items keep uint8 frames and float32 log-mels (small to hand between
processes); ``model_input`` converts them as training did.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from mmbehave.core.errors import ClipReadError
from mmbehave.data.clip_inputs import PreprocessSettings, ProcessedClip, preprocess_clip

log = logging.getLogger(__name__)


@dataclass
class ClipWindow:
    start: float
    end: float | None            # None: the whole clip
    clip: ProcessedClip


@dataclass
class ClipItem:
    path: Path
    windows: list[ClipWindow] = field(default_factory=list)
    error: str = ""              # why the clip could not be read ("" when it could)

    @property
    def has_video(self) -> bool:
        return bool(self.windows) and self.windows[0].clip.has_video

    @property
    def has_audio(self) -> bool:
        return bool(self.windows) and self.windows[0].clip.has_audio


@dataclass(frozen=True)
class Segmenting:
    """predict's segment_stride= (None: the whole clip is one window, as training saw it)."""

    length: float
    stride: float | None = None


class ClipFiles(Dataset):
    """Item i: the i-th file read as the model's inputs (every window of it, with segmenting)."""

    def __init__(self, files: list[Path], settings: PreprocessSettings, segmenting: Segmenting,
                 decoder_threads: int = 1) -> None:
        self.files, self.settings, self.segmenting = files, settings, segmenting
        self.decoder_threads = decoder_threads

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> ClipItem:
        path = self.files[index]
        try:
            return ClipItem(path, list(self._windows(path)))
        except ClipReadError as error:
            return ClipItem(path, error=error.reason)
        except Exception as error:  # a decoder's surprise must not stop the others
            return ClipItem(path, error=" ".join(f"{type(error).__name__}: {error}".split()))

    def _windows(self, path: Path):
        if self.segmenting.stride is None:
            yield ClipWindow(0.0, None, preprocess_clip(path, None, self.settings, threads=self.decoder_threads))
            return
        from mmbehave.predicting.segments import iter_segments

        for segment in iter_segments(path, self.settings, self.segmenting.length, self.segmenting.stride,
                                     threads=self.decoder_threads):
            yield ClipWindow(segment.start, segment.end, segment.clip)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def clip_loader(files: ClipFiles, num_workers: int) -> DataLoader:
    """Items in file order, ``num_workers`` files read at once (0: in this process, for debugging)."""
    options = {}
    if num_workers > 0:
        # DataLoader's own workers (forked, as PyTorch does everywhere): they start in milliseconds with the
        # reader already imported, and each watches this process, so a kill -9 here leaves no orphan behind.
        options = {"worker_init_fn": _one_thread, "prefetch_factor": 4, "persistent_workers": False}
    return DataLoader(files, batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_as_is, **options)


def _as_is(item: ClipItem) -> ClipItem:
    return item


def _one_thread(worker: int) -> None:
    torch.set_num_threads(1)  # the workers share the cores between them and the model


def model_input(window: ClipWindow, mel_mean: float, mel_std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(video (3, T, H, W) float in [0, 1], audio (1, n_mels, time) standardised), as mmbehave.data.dataset."""
    clip = window.clip
    video = clip.frames.permute(1, 0, 2, 3).float().div_(255.0)
    audio = ((torch.from_numpy(clip.mel).float() - mel_mean) / mel_std).unsqueeze(0)
    return video, audio
