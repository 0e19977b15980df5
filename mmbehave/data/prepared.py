"""From the ``data`` config to checked tables, class lists and DataLoaders.

Everything that can be wrong with the data is found here, before a model is built.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from mmbehave.core.errors import ConfigError, DataError
from mmbehave.domain.heads import HeadSpec
from mmbehave.core.instantiate import build
from mmbehave.core.progress import show_progress
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.dataset import Augmentation, ClipDataset, collate, mel_statistics
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.metadata import (
    ClassLists,
    check_groups_in_one_split,
    check_labels_seen_in_train,
    check_trainable_classes,
    class_lists,
    csv_row,
    read_metadata,
)
from mmbehave.data.settings import DataSettings, group_by_columns
from mmbehave.data.splits.label_subset import label_subset
from mmbehave.data.validation import (
    check_processed_clips,
    manifest_settings,
    modality_flags,
    read_manifest,
)

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    layout: DatasetLayout
    tables: dict
    heads: tuple[HeadSpec, ...]                     # model.heads: which label columns, read how
    classes: ClassLists
    has_audio: dict[str, bool]
    has_video: dict[str, bool] = field(default_factory=dict)
    preprocess: dict = field(default_factory=dict)  # how the files were made (manifest, else config): for checkpoints
    mel_mean: float = 0.0
    mel_std: float = 1.0

    def stats(self) -> dict[str, float]:
        return {"mel_mean": self.mel_mean, "mel_std": self.mel_std}


def preprocess_values(settings: PreprocessSettings) -> dict:
    """The preprocessing settings as a checkpoint records them (frame_window a list, or None)."""
    values = dataclasses.asdict(settings)
    values["frame_window"] = list(settings.frame_window) if settings.frame_window else None
    return values


def _same_setting(key: str, value, made_with) -> bool:
    if key != "frame_window":
        return float(value) == float(made_with)
    if value is None or made_with is None:  # null: the whole clip
        return value is None and made_with is None
    return [float(v) for v in value] == [float(v) for v in made_with]


def check_settings_match_files(settings: PreprocessSettings, recorded: dict, manifest_path: Path) -> None:
    """ConfigError naming every ``data.*`` preprocessing key whose value differs from what the files were
    made with (``recorded``, from the manifest)."""
    configured = preprocess_values(settings)
    differences = [f"data.{key}={configured.get(key)} (files: {made_with})" for key, made_with in recorded.items()
                   if not _same_setting(key, configured.get(key), made_with)]
    if differences:
        raise ConfigError(f"{manifest_path} says the processed files were made with other settings than the config: "
                          f"{'; '.join(differences)}. Set those data.* keys to the files' values, or re-run "
                          "`python -m mmbehave.preprocess` with the new ones.")


def make_dataset_files(data_cfg: DictConfig) -> None:
    """Build ``data.prepare`` (a ``_target_`` node of the run's own config: the synthetic generators) and call it
    with the data config; nothing when the dataset is the user's (``data.prepare: null``)."""
    if data_cfg.get("prepare"):
        build(data_cfg.prepare)(data_cfg)


def prepare_data(data: DataSettings, modalities: tuple[str, ...], *, heads: tuple[HeadSpec, ...],
                 splits=("train", "val", "test"), mel_stats: dict | None = None) -> PreparedData:
    """Read and check the dataset at ``data.root`` (made already: ``make_dataset_files``).

    All label tables are read (class lists are the union over every split, so a model trained here can
    be tested on the test split); the clip files of ``splits`` are checked. ``mel_stats`` from a
    checkpoint replace the measured ones (resume, evaluation)."""
    layout = DatasetLayout(data.root, data.labels_dir)
    tables = read_metadata(layout, heads=heads)
    check_groups_in_one_split(layout, tables, data.group_by)
    check_trainable_classes(layout, tables, heads)
    check_labels_seen_in_train(layout, tables, heads)
    classes = class_lists(tables, heads)  # before the share below: a model's outputs do not depend on it
    if data.label_share.active:
        every = len(tables["train"])
        tables["train"] = label_subset(tables["train"], tuple(heads), data.label_share, str(layout.metadata_csv("train")))
        log.info("%s: training on %d of %d labelled clips (each class its share, events whole; val/test whole)",
                 data.label_share.describe(), len(tables["train"]), every)
    manifest = read_manifest(layout)
    recorded = manifest_settings(layout, manifest)
    if recorded is not None:
        check_settings_match_files(data.preprocess, recorded, layout.manifest)
    settings = data.preprocess
    check_processed_clips(layout, {split: tables[split] for split in splits}, modalities, settings.num_frames,
                          settings.image_size, settings.n_mels, progress=show_progress(), manifest=manifest)
    prepared = PreparedData(layout, tables, tuple(heads), classes, modality_flags(manifest, "audio"),
                            modality_flags(manifest, "video"), preprocess=recorded or preprocess_values(settings))
    if mel_stats:
        prepared.mel_mean, prepared.mel_std = mel_stats["mel_mean"], mel_stats["mel_std"]
    elif "audio" in modalities:
        prepared.mel_mean, prepared.mel_std = mel_statistics(layout, tables["train"]["clip_id"].tolist(), prepared.has_audio)
    return prepared


def make_dataset(prepared: PreparedData, split: str, modalities: tuple[str, ...], classes: ClassLists,
                 augmentation: Augmentation | None = None, cached: dict | None = None) -> ClipDataset:
    """``cached``: {modality: CachedTokens} of this split, read instead of the modality's input files."""
    return ClipDataset(prepared.layout, prepared.tables[split], heads=prepared.heads, classes=classes,
                       modalities=modalities, mel_mean=prepared.mel_mean, mel_std=prepared.mel_std,
                       has_audio=prepared.has_audio, has_video=prepared.has_video, augmentation=augmentation,
                       cached=cached)


def make_loader(dataset, batch_size: int, *, num_workers: int = 0, pin_memory: bool = False, shuffle: bool = False,
                generator: torch.Generator | None = None, sampler=None) -> DataLoader:
    """Batches of ``collate``d clips (``hardware.num_workers`` / ``hardware.pin_memory`` from training;
    evaluation and export load in the main process). ``sampler``: this process's share under torchrun."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                      generator=generator, sampler=sampler, collate_fn=collate, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=False, drop_last=False)


def evaluation_data(trained, data_root: str | None = None) -> DataSettings:
    """The data settings to read a trained model's test clips with, from the checkpoint's stored preprocessing
    values and the command line only. A checkpoint's config is data: its ``data.prepare`` (or anything else
    callable) is never built, so a file from elsewhere can neither generate nor delete a folder. The dataset
    is ``data_root`` (the command line), else the root the model was trained on, read as it is."""
    stored = trained.config.get("data") or {}
    root = data_root or stored.get("root")
    if not root:
        raise ConfigError(f"{trained.path} does not say which dataset it was trained on; pass data_root=<dataset root, "
                          "preprocessed alike>.")
    # a model trained before 2026-12 stored the same value as data.group_column
    stored_groups = stored.get("group_by", stored.get("group_column"))
    try:
        groups = group_by_columns(OmegaConf.to_container(stored_groups) if OmegaConf.is_config(stored_groups) else stored_groups)
    except ConfigError:
        groups = None  # not a column name: check the usual group columns instead
    labels = None if data_root else stored.get("labels_dir")  # a fold's model is tested on that fold's test set
    return DataSettings(Path(str(root)).expanduser().resolve(), trained.preprocess, groups,
                        labels_dir=Path(str(labels)) if labels else None)


def split_dataset(trained, split: str, data_root: str | None = None) -> ClipDataset:
    """The ``split`` clips of the dataset a trained model (``TrainedModel``) was trained on, or of ``data_root``
    preprocessed the same way, labelled with the model's classes and standardised with its mel statistics.
    Labels are checked over every split, and only this split's files are read."""
    if split not in SPLITS:
        raise ConfigError(f"split={split} is not one of {', '.join(SPLITS)}.")
    data = evaluation_data(trained, data_root)
    if not DatasetLayout(data.root, data.labels_dir).metadata_dir.is_dir():
        raise DataError(f"{data.root}: no dataset here (no raw/metadata/). Pass data_root=<a dataset preprocessed "
                        "as the model's was>; for the built-in benchmark, make it first with `python -m "
                        "mmbehave.synthetic` and the training's data.* settings.")
    prepared = prepare_data(data, trained.modalities, splits=(split,),
                            mel_stats={"mel_mean": trained.mel_mean, "mel_std": trained.mel_std}, heads=trained.heads)
    table = prepared.tables[split]
    for head in trained.heads:
        known = trained.classes[head.name]
        for row, cell in table[head.column].items():
            unknown = [label for label in head.cell_labels(cell) if label not in known]
            if unknown:
                raise DataError(f"{prepared.layout.metadata_csv(split)}, row {csv_row(row)}: {head.column} "
                                f"'{unknown[0]}' is not one of the model's classes ({', '.join(known)}).")
    return make_dataset(prepared, split, trained.modalities, trained.classes)
