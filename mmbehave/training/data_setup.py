"""From the ``data`` config to checked tables, class lists and DataLoaders.

Everything that can be wrong with the data is found here, before a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from mmbehave.data.dataset import Augmentation, ClipDataset, collate, mel_statistics
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import (
    ClassLists,
    check_labels_seen_in_train,
    class_lists,
    read_metadata,
)
from mmbehave.data.validation import audio_flags, check_processed_clips, read_manifest
from mmbehave.instantiate import build
from mmbehave.training.loop import show_progress

# The data settings a model's inputs depend on; saved in checkpoints so prediction preprocesses alike.
PREPROCESS_KEYS = ("num_frames", "image_size", "frame_window", "sample_rate", "clip_seconds", "n_mels", "n_fft", "hop_length")


@dataclass
class PreparedData:
    layout: DatasetLayout
    tables: dict
    classes: ClassLists
    has_audio: dict[str, bool]
    mel_mean: float = 0.0
    mel_std: float = 1.0

    def stats(self) -> dict[str, float]:
        return {"mel_mean": self.mel_mean, "mel_std": self.mel_std}


def preprocess_settings(data_cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(data_cfg, resolve=True)
    return {key: container.get(key) for key in PREPROCESS_KEYS}


def prepare_data(data_cfg: DictConfig, modalities: tuple[str, ...], splits=("train", "val", "test"),
                 mel_stats: dict | None = None) -> PreparedData:
    """Build the dataset if its config says how (``data.prepare``), then read and check it.

    All label tables are read (class lists are the union over every split, so a model trained here can
    be tested on the test split); the clip files of ``splits`` are checked. ``mel_stats`` from a
    checkpoint replace the measured ones (resume, evaluation)."""
    if data_cfg.get("prepare"):
        build(data_cfg.prepare)(data_cfg)
    layout = DatasetLayout(data_cfg.root)
    tables = read_metadata(layout)
    check_labels_seen_in_train(layout, tables)
    manifest = read_manifest(layout)
    check_processed_clips(layout, {split: tables[split] for split in splits}, modalities, int(data_cfg.num_frames),
                          int(data_cfg.image_size), int(data_cfg.n_mels), progress=show_progress(), manifest=manifest)
    prepared = PreparedData(layout, tables, class_lists(tables), audio_flags(manifest))
    if mel_stats:
        prepared.mel_mean, prepared.mel_std = mel_stats["mel_mean"], mel_stats["mel_std"]
    elif "audio" in modalities:
        prepared.mel_mean, prepared.mel_std = mel_statistics(layout, tables["train"]["clip_id"].tolist(), prepared.has_audio)
    return prepared


def make_dataset(prepared: PreparedData, split: str, modalities: tuple[str, ...], classes: ClassLists,
                 augment_cfg: DictConfig | None = None) -> ClipDataset:
    augmentation = Augmentation.from_config(augment_cfg) if augment_cfg is not None else None
    return ClipDataset(prepared.layout, prepared.tables[split], classes, modalities, prepared.mel_mean,
                       prepared.mel_std, prepared.has_audio, augmentation)


def make_loader(dataset: ClipDataset, batch_size: int, hardware: DictConfig | None = None, shuffle: bool = False,
                generator: torch.Generator | None = None) -> DataLoader:
    """Batches of ``collate``d clips; ``hardware`` (the config group) sets workers and pinned memory,
    None loads in the main process."""
    workers = int(hardware.num_workers) if hardware is not None else 0
    pin_memory = bool(hardware.pin_memory) if hardware is not None else False
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate,
                      num_workers=workers, pin_memory=pin_memory, persistent_workers=False, drop_last=False)
