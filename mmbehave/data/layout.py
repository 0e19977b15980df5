"""The on-disk dataset layout (the original guide's), in one place.

    <root>/raw/metadata/{train,val,test}.csv        clip_id, species, behavior [, video_path, audio_path, ...]
    <root>/raw/videos/<clip_id>.mp4                  default video location (video_path is relative to raw/)
    <root>/processed/video_frames/<clip_id>.pt      uint8 tensor T x C x H x W
    <root>/processed/mel_spectrograms/<clip_id>.npy float32 log-mel n_mels x time
    <root>/processed/manifest.csv                   one row per clip: status, has_audio, settings used
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetLayout:
    root: Path
    labels_dir: Path | None = None   # the label tables elsewhere (data.labels_dir: a cross-validation fold)

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.labels_dir is not None:
            object.__setattr__(self, "labels_dir", Path(self.labels_dir))

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def metadata_dir(self) -> Path:
        return self.labels_dir if self.labels_dir is not None else self.raw_dir / "metadata"

    def metadata_csv(self, split: str) -> Path:
        return self.metadata_dir / f"{split}.csv"

    def default_video_path(self, clip_id: str) -> str:
        """Relative to ``raw/``, as the ``video_path`` column is."""
        return f"videos/{clip_id}.mp4"

    @property
    def processed_dir(self) -> Path:
        return self.root / "processed"

    def video_frames(self, clip_id: str) -> Path:
        return self.processed_dir / "video_frames" / f"{clip_id}.pt"

    def mel_spectrogram(self, clip_id: str) -> Path:
        return self.processed_dir / "mel_spectrograms" / f"{clip_id}.npy"

    @property
    def manifest(self) -> Path:
        return self.processed_dir / "manifest.csv"
