"""Clips read once from a folder or a table, decoded as training preprocesses, kept on disk for every later run.

    a folder (searched recursively for camera and recorder files) or a CSV with a ``path`` column
      ─► each clip decoded once, in worker processes, as training preprocesses (data.clip_inputs), into a
         processed layout under <cache_dir>/unlabeled/<settings>/ (frames .pt, log-mel .npy, pool.csv): one copy
         per preprocessing, which both commands share when they are given the same cache folder
A clip that cannot be read is logged and left out, as predict does. Decoding resumes where a killed run stopped:
a clip whose files are there is not decoded again, and every file is written atomically. Used by distill's
``distill.unlabeled`` and by pretrain's ``input``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mmbehave.core.atomic import atomic_path, write_text_atomic
from mmbehave.core.errors import ConfigError
from mmbehave.core.locks import exclusive
from mmbehave.core.progress import show_progress
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.media_files import find_media
from mmbehave.data.prepared import preprocess_values

log = logging.getLogger(__name__)

LISTING_EVERY = 64  # decoded clips between two rewrites of pool.csv


def pool_files(source: str, key: str = "distill.unlabeled") -> list[Path]:
    """The clips ``source`` (the value of option ``key``) names, in a stable order."""
    where = Path(str(source)).expanduser()
    if where.is_dir():
        found = find_media(where)
        if not found.files:
            raise ConfigError(f"{key}={source}: no video or audio files in that folder.")
        return [path.resolve() for path in found.files]
    if where.is_file() and where.suffix.lower() == ".csv":
        table = pd.read_csv(where, dtype=str, keep_default_na=False)
        if "path" not in table.columns:
            raise ConfigError(f"{key}={source}: the table has no path column (it has "
                              f"{', '.join(table.columns)}); give one clip path per row, relative to the table's folder.")
        paths = [(where.parent / cell).resolve() for cell in table["path"] if cell.strip()]
        missing = [(row, path) for row, path in enumerate(paths) if not path.is_file()]
        if missing:
            row, path = missing[0]
            raise ConfigError(f"{where}, row {row + 2}: {path} does not exist ({len(missing)} such row(s)).")
        return paths
    raise ConfigError(f"{key}={source}: neither a folder nor a .csv table of clips.")


def clip_key(path: Path) -> str:
    """A clip's id in the pool: its resolved path's hash (the same clip keeps its decoded files across runs)."""
    return "u" + hashlib.sha1(str(path).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DecodedPool:
    layout: DatasetLayout            # processed/video_frames, processed/mel_spectrograms of the pool
    table: pd.DataFrame              # clip_id, path, has_video, has_audio (readable clips only)
    unreadable: int
    errors: pd.DataFrame | None = None  # path, error: the clips left out and why


def pool_folder(cache_dir: Path, settings: PreprocessSettings) -> Path:
    """One decoded copy per preprocessing: another data.num_frames makes another folder, never a mixed one."""
    key = hashlib.sha256(json.dumps(preprocess_values(settings), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / "unlabeled" / key


def decode_pool(files: list[Path], settings: PreprocessSettings, cache_dir: Path, num_workers: int) -> DecodedPool:
    from mmbehave.predicting.clip_loading import ClipFiles, Segmenting, clip_loader

    layout = DatasetLayout(pool_folder(cache_dir, settings))
    listing = layout.processed_dir / "pool.csv"
    with exclusive(listing, waiting="waiting for another run to finish decoding the unlabelled clips"):
        known = _read_listing(listing)
        todo = [path for path in files if not _decoded(layout, known.get(clip_key(path)))]
        if todo:
            log.info("Decoding %d unlabelled clip(s) into %s (%d decoded before)", len(todo), layout.root,
                     len(files) - len(todo))
            loader = clip_loader(ClipFiles(todo, settings, Segmenting(settings.clip_seconds)), num_workers)
            for done, item in enumerate(tqdm(loader, total=len(todo), desc="decode unlabelled clips", leave=False,
                                             disable=not show_progress()), start=1):
                known[clip_key(item.path)] = _write_clip(layout, item)
                if done % LISTING_EVERY == 0:  # a killed decode keeps what it listed: not decoded again
                    _write_listing(listing, known)
            _write_listing(listing, known)
    rows = [known[clip_key(path)] for path in files]
    readable = [row for row in rows if not row["error"]]
    for row in rows:
        if row["error"]:
            log.warning("unlabelled clip %s left out: %s", row["path"], row["error"])
    table = pd.DataFrame(readable, columns=["clip_id", "path", "has_video", "has_audio", "error"])
    errors = pd.DataFrame([row for row in rows if row["error"]], columns=["path", "error"])
    return DecodedPool(layout, table, len(rows) - len(readable), errors)


def _decoded(layout: DatasetLayout, row: dict | None) -> bool:
    if row is None:
        return False
    if row["error"]:
        return True  # unreadable then, unreadable now: not tried on every run
    return layout.video_frames(row["clip_id"]).is_file() and layout.mel_spectrogram(row["clip_id"]).is_file()


def _write_clip(layout: DatasetLayout, item) -> dict:
    clip_id = clip_key(item.path)
    row = {"clip_id": clip_id, "path": str(item.path), "has_video": "", "has_audio": "", "error": item.error}
    if item.error:
        return row
    clip = item.windows[0].clip
    with atomic_path(layout.video_frames(clip_id)) as temp:
        torch.save(clip.frames.clone(), temp)
    with atomic_path(layout.mel_spectrogram(clip_id)) as temp:
        np.save(temp, clip.mel.astype(np.float32))
    row.update(has_video=str(clip.has_video), has_audio=str(clip.has_audio))
    return row


def _read_listing(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {row["clip_id"]: row for row in csv.DictReader(handle)}


def _write_listing(path: Path, rows: dict[str, dict]) -> None:
    table = pd.DataFrame(list(rows.values()), columns=["clip_id", "path", "has_video", "has_audio", "error"])
    write_text_atomic(path, table.to_csv(index=False))
