"""The clips pretraining learns from, as a dataset of model inputs; labels are never read.

    input=<folder | table.csv> ─► decoded once into <pretrain.cache_dir>/unlabeled/<preprocessing>/ (predicting/clip_pool.py:
                                   every container the archive reader takes; unreadable files listed, left out)
    input=null                 ─► data's own dataset, its processed clips of pretrain.splits (train, val, test:
                                   the archive setting; train, val: the training sites' clips only)
      ─► ClipDataset with no heads: frames in [0, 1] and log-mels standardised by these clips' own statistics,
         augmented as training augments (data.augment)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmbehave.core.errors import DataError
from mmbehave.data.dataset import ClipDataset, mel_statistics
from mmbehave.data.metadata import ClassLists
from mmbehave.data.prepared import make_dataset_files, prepare_data
from mmbehave.predicting.clip_pool import decode_pool, pool_files
from mmbehave.pretraining.settings import PretrainSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainClips:
    dataset: ClipDataset
    source: str                      # what the run names as its clips
    errors: pd.DataFrame             # path, error: clips left out
    with_audio: int                  # clips that have a sound track (the contrastive half's)


def pretrain_clips(settings: PretrainSettings, data_cfg) -> PretrainClips:
    options = settings.options
    if settings.input is None:
        make_dataset_files(data_cfg)  # the built-in data's generator, when the dataset has one
        prepared = prepare_data(settings.data, settings.modalities, heads=(), splits=options.splits)
        table = pd.concat([prepared.tables[split] for split in options.splits], ignore_index=True)[["clip_id"]]
        layout, has_audio, has_video = prepared.layout, prepared.has_audio, prepared.has_video
        source = f"{settings.data.root} ({'+'.join(options.splits)} clips, labels not read)"
        errors = pd.DataFrame(columns=["path", "error"])
    else:
        files = pool_files(settings.input, key="input")
        decoded = decode_pool(files, settings.data.preprocess, Path(options.cache_dir).expanduser().resolve(),
                              settings.hardware.num_workers or 2)
        table, layout, errors = decoded.table[["clip_id"]], decoded.layout, decoded.errors
        has_audio = dict(zip(decoded.table["clip_id"], decoded.table["has_audio"] == "True"))
        has_video = dict(zip(decoded.table["clip_id"], decoded.table["has_video"] == "True"))
        source = str(settings.input)
    if options.max_clips is not None and len(table) > options.max_clips:  # evenly over the listing, not its start
        table = table.iloc[np.linspace(0, len(table) - 1, options.max_clips).astype(int)]
    with_video = [clip for clip in table["clip_id"] if has_video.get(clip, True)]
    if len(with_video) < 2:
        raise DataError(f"{source}: {len(with_video)} clip(s) with video to pretrain on; the masked objective needs "
                         "at least 2 (and a few hundred to be worth it).")
    table = table[table["clip_id"].isin(with_video)].reset_index(drop=True)
    mel_mean, mel_std = (mel_statistics(layout, table["clip_id"].tolist(), has_audio)
                         if "audio" in settings.modalities else (0.0, 1.0))
    dataset = ClipDataset(layout, table, heads=(), classes=ClassLists({}), modalities=settings.modalities,
                          mel_mean=mel_mean, mel_std=mel_std, has_audio=has_audio, has_video=has_video,
                          augmentation=settings.data.augment)
    audio_count = sum(has_audio.get(clip, True) for clip in table["clip_id"])
    log.info("Pretraining on %d clip(s) from %s: %d with sound%s", len(table), source, audio_count,
             f"; {len(errors)} unreadable left out" if len(errors) else "")
    return PretrainClips(dataset, source, errors, audio_count)
