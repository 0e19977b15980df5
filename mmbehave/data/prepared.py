"""From the ``data`` config to checked tables, class lists and DataLoaders.

Everything that can be wrong with the data is found here, before a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from mmbehave.core.errors import ConfigError, DataError
from mmbehave.core.heads import HeadSpec
from mmbehave.core.instantiate import build
from mmbehave.core.progress import show_progress
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
from mmbehave.data.preprocessing import SETTINGS_COLUMNS
from mmbehave.data.validation import (
    check_processed_clips,
    manifest_settings,
    modality_flags,
    read_manifest,
)

# The data settings a model's inputs depend on; saved in checkpoints so prediction preprocesses alike.
PREPROCESS_KEYS = SETTINGS_COLUMNS


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


def preprocess_settings(data_cfg: DictConfig) -> dict:
    container = OmegaConf.to_container(data_cfg, resolve=True)
    return {key: container.get(key) for key in PREPROCESS_KEYS}


def _same_setting(key: str, value, made_with) -> bool:
    if key != "frame_window":
        return float(value) == float(made_with)
    if value is None or made_with is None:  # null: the whole clip
        return value is None and made_with is None
    return [float(v) for v in value] == [float(v) for v in made_with]


def check_settings_match_files(data_cfg: DictConfig, recorded: dict, manifest_path: Path) -> None:
    """ConfigError naming every ``data.*`` preprocessing key whose value differs from what the files were
    made with (``recorded``, from the manifest)."""
    configured = preprocess_settings(data_cfg)
    differences = []
    for key, made_with in recorded.items():
        value = configured.get(key)
        if value is None and key != "frame_window":
            continue  # a config without the key (preprocessed elsewhere): nothing to disagree with
        if not _same_setting(key, value, made_with):
            differences.append(f"data.{key}={value} (files: {made_with})")
    if differences:
        raise ConfigError(f"{manifest_path} says the processed files were made with other settings than the config: "
                          f"{'; '.join(differences)}. Set those data.* keys to the files' values, or re-run "
                          "`python -m mmbehave.preprocess` with the new ones.")


def _group_column(data_cfg: DictConfig) -> str | list[str] | None:
    """``data.group_column`` as plain Python (a string, a list, or None when the key is null or absent, as in
    the config of a checkpoint saved before the key existed)."""
    value = data_cfg.get("group_column")
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def prepare_data(data_cfg: DictConfig, modalities: tuple[str, ...], *, heads: tuple[HeadSpec, ...],
                 splits=("train", "val", "test"), mel_stats: dict | None = None) -> PreparedData:
    """Build the dataset if its config says how (``data.prepare``), then read and check it.

    All label tables are read (class lists are the union over every split, so a model trained here can
    be tested on the test split); the clip files of ``splits`` are checked. ``mel_stats`` from a
    checkpoint replace the measured ones (resume, evaluation)."""
    if data_cfg.get("prepare"):
        build(data_cfg.prepare)(data_cfg)
    layout = DatasetLayout(data_cfg.root)
    tables = read_metadata(layout, heads=heads)
    check_groups_in_one_split(layout, tables, _group_column(data_cfg))
    check_trainable_classes(layout, tables, heads)
    check_labels_seen_in_train(layout, tables, heads)
    manifest = read_manifest(layout)
    recorded = manifest_settings(layout, manifest)
    if recorded is not None:
        check_settings_match_files(data_cfg, recorded, layout.manifest)
    check_processed_clips(layout, {split: tables[split] for split in splits}, modalities, int(data_cfg.num_frames),
                          int(data_cfg.image_size), int(data_cfg.n_mels), progress=show_progress(), manifest=manifest)
    prepared = PreparedData(layout, tables, tuple(heads), class_lists(tables, heads), modality_flags(manifest, "audio"),
                            modality_flags(manifest, "video"), preprocess=recorded or preprocess_settings(data_cfg))
    if mel_stats:
        prepared.mel_mean, prepared.mel_std = mel_stats["mel_mean"], mel_stats["mel_std"]
    elif "audio" in modalities:
        prepared.mel_mean, prepared.mel_std = mel_statistics(layout, tables["train"]["clip_id"].tolist(), prepared.has_audio)
    return prepared


def make_dataset(prepared: PreparedData, split: str, modalities: tuple[str, ...], classes: ClassLists,
                 augment_cfg: DictConfig | None = None, cached: dict | None = None) -> ClipDataset:
    """``cached``: {modality: CachedTokens} of this split, read instead of the modality's input files."""
    augmentation = Augmentation.from_config(augment_cfg) if augment_cfg is not None else None
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


def evaluation_data_config(trained, data_root: str | None = None) -> DictConfig:
    """The ``data`` settings to read a trained model's test clips with, from the checkpoint's stored preprocessing
    values and the command line only. A checkpoint's config is data: its ``data.prepare`` (or anything else
    callable) is never built, so a file from elsewhere can neither generate nor delete a folder. The dataset
    is ``data_root`` (the command line), else the root the model was trained on, read as it is."""
    stored = trained.config.get("data") or {}
    root = data_root or stored.get("root")
    if not root:
        raise ConfigError(f"{trained.path} does not say which dataset it was trained on; pass data_root=<dataset root, "
                          "preprocessed alike>.")
    group_column = stored.get("group_column")
    if OmegaConf.is_config(group_column):
        group_column = OmegaConf.to_container(group_column)
    if not (group_column is None or isinstance(group_column, str)
            or (isinstance(group_column, list) and all(isinstance(c, str) for c in group_column))):
        group_column = None  # not a column name: check the usual group columns instead
    settings = {key: getattr(trained.preprocess, key) for key in PREPROCESS_KEYS}
    if settings["frame_window"] is not None:
        settings["frame_window"] = list(settings["frame_window"])
    return OmegaConf.create({"root": str(Path(str(root)).expanduser().resolve()), "prepare": None,
                             "group_column": group_column, **settings})


def split_dataset(trained, split: str, data_root: str | None = None) -> ClipDataset:
    """The ``split`` clips of the dataset a trained model (``TrainedModel``) was trained on, or of ``data_root``
    preprocessed the same way, labelled with the model's classes and standardised with its mel statistics.
    Labels are checked over every split, and only this split's files are read."""
    if split not in SPLITS:
        raise ConfigError(f"split={split} is not one of {', '.join(SPLITS)}.")
    data_cfg = evaluation_data_config(trained, data_root)
    if not DatasetLayout(data_cfg.root).metadata_dir.is_dir():
        raise DataError(f"{data_cfg.root}: no dataset here (no raw/metadata/). Pass data_root=<a dataset preprocessed "
                        "as the model's was>; for the built-in benchmark, make it first with `python -m "
                        "mmbehave.synthetic` and the training's data.* settings.")
    prepared = prepare_data(data_cfg, trained.modalities, splits=(split,),
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
