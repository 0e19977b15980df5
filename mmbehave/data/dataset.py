"""Training dataset over the processed layout.

    video_frames/<id>.pt  uint8 (T, C, H, W) --float/255, temporal jitter--> video (C, T, H, W) in [0, 1]
    mel_spectrograms/<id>.npy (n_mels, time) --standardise, SpecAugment---> audio (1, n_mels, time)

The video encoder normalises with its checkpoint's mean/std, so frames leave here in [0, 1]. Log-mels are
standardised with statistics measured on training clips (stored in checkpoints, so prediction matches).
Augmentation is only built for the training split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from mmbehave.domain.heads import HeadSpec, encode_targets
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import ClassLists

# Enough clips to pin down a mean and std; reading every spectrogram of a large dataset would be slow.
MEL_STATS_MAX_CLIPS = 256


@dataclass(frozen=True)
class Augmentation:
    temporal_jitter: int = 0
    time_masks: int = 0
    time_mask_width: int = 0
    freq_masks: int = 0
    freq_mask_width: int = 0


def mel_statistics(layout: DatasetLayout, clip_ids: list[str], has_audio: dict[str, bool]) -> tuple[float, float]:
    """Mean and std of log-mel values over (up to MEL_STATS_MAX_CLIPS) training clips that have audio."""
    with_audio = [c for c in clip_ids if has_audio.get(c, True)] or clip_ids
    picked = [with_audio[i] for i in np.linspace(0, len(with_audio) - 1, min(len(with_audio), MEL_STATS_MAX_CLIPS)).astype(int)]
    values = np.concatenate([np.load(layout.mel_spectrogram(c)).ravel() for c in picked])
    return float(values.mean()), float(max(values.std(), 1e-6))


class ClipDataset(Dataset):
    """One split. Items: ``video`` (C,T,H,W) float, ``audio`` (1,n_mels,time) float, ``audio_present`` bool,
    ``targets`` {head: class index (single) or (C,) 0/1 row (multi)}, ``clip_id``. Only the modalities the
    model uses are read."""

    def __init__(
        self,
        layout: DatasetLayout,
        table: pd.DataFrame,
        *,
        heads: Sequence[HeadSpec],
        classes: ClassLists,
        modalities: tuple[str, ...],
        mel_mean: float,
        mel_std: float,
        has_audio: dict[str, bool] | None = None,
        has_video: dict[str, bool] | None = None,
        augmentation: Augmentation | None = None,
        cached: dict | None = None,
    ) -> None:
        self.layout = layout
        self.clip_ids = table["clip_id"].tolist()
        self.heads = tuple(heads)
        # {head: (N,) class indices or (N, C) 0/1 rows}
        self.targets = {head.name: encode_targets(head, table[head.column], classes[head.name]) for head in heads}
        self.modalities = modalities
        self.mel_mean, self.mel_std = mel_mean, mel_std
        self.has_audio = has_audio or {}
        self.has_video = has_video or {}
        # {modality: CachedTokens}: frozen encoders' outputs, handed out as "<modality>_tokens" instead of inputs
        self.cached = cached or {}
        self.augmentation = augmentation or Augmentation()

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, index: int) -> dict:
        clip_id = self.clip_ids[index]
        item = {"clip_id": clip_id, "targets": {head: values[index] for head, values in self.targets.items()}}
        # Both flags, whatever the model uses: evaluation scores clips without audio apart, video-only models too.
        item["video_present"] = bool(self.has_video.get(clip_id, True))
        item["audio_present"] = bool(self.has_audio.get(clip_id, True))
        for modality in self.modalities:
            if modality in self.cached:
                item[f"{modality}_tokens"] = self.cached[modality].row(clip_id)
            else:
                item[modality] = self._video(clip_id) if modality == "video" else self._audio(clip_id)
        return item

    def _video(self, clip_id: str) -> torch.Tensor:
        frames = torch.load(self.layout.video_frames(clip_id), weights_only=True)  # (T, C, H, W) uint8
        jitter = self.augmentation.temporal_jitter
        if jitter:
            # Shift the window by up to `jitter` frames, repeating the edge frame: T stays fixed and the
            # motion stays continuous (a wrap-around roll would make the animal jump).
            shift = int(torch.randint(-jitter, jitter + 1, ()))
            index = torch.arange(len(frames)) + shift
            frames = frames[index.clamp_(0, len(frames) - 1)]
        return frames.permute(1, 0, 2, 3).float().div_(255.0)

    def _audio(self, clip_id: str) -> torch.Tensor:
        mel = torch.from_numpy(np.load(self.layout.mel_spectrogram(clip_id)).astype(np.float32))
        mel = (mel - self.mel_mean) / self.mel_std
        aug = self.augmentation
        for _ in range(aug.freq_masks):
            _mask(mel, dim=0, max_width=aug.freq_mask_width)
        for _ in range(aug.time_masks):
            _mask(mel, dim=1, max_width=aug.time_mask_width)
        return mel.unsqueeze(0)


def _mask(mel: torch.Tensor, dim: int, max_width: int) -> None:
    """SpecAugment: zero (the standardised mean) a random band of up to ``max_width`` along ``dim``."""
    size = mel.shape[dim]
    width = int(torch.randint(0, max(1, min(max_width, size)) + 1, ()))
    if width == 0:
        return
    start = int(torch.randint(0, size - width + 1, ()))
    mel.narrow(dim, start, width).zero_()


def collate(items: list[dict]) -> dict:
    batch = {
        "clip_id": [it["clip_id"] for it in items],
        # {head: (B,) int64 class indices or (B, C) float 0/1 rows}
        "targets": {head: torch.as_tensor(np.stack([it["targets"][head] for it in items]))
                    for head in items[0]["targets"]},
    }
    for modality in ("video", "audio"):
        for key in (modality, f"{modality}_tokens"):
            if key in items[0]:
                batch[key] = torch.stack([it[key] for it in items])
        if f"{modality}_present" in items[0]:
            batch[f"{modality}_present"] = torch.tensor([it[f"{modality}_present"] for it in items], dtype=torch.bool)
    return batch
