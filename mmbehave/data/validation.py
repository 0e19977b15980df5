"""Checks of the processed files before any training starts.

Every clip the metadata lists is opened cheaply (memory-mapped, no full read) and its dtype and shape are
compared with what the config promises, so a bad file stops the run in seconds with its path and the
metadata row, not an hour in with a collate error.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mmbehave.core.errors import DataError
from mmbehave.data.clip_inputs import SETTINGS_COLUMNS
from mmbehave.data.layout import DatasetLayout
from mmbehave.data.metadata import csv_row

PREPROCESS_HINT = "Re-create it with `python -m mmbehave.preprocess data.root=<root>` or drop the row."


def read_manifest(layout: DatasetLayout) -> pd.DataFrame | None:
    """The preprocessing manifest, or None for data preprocessed by other tools (the original guide's layout has none)."""
    if not layout.manifest.is_file():
        return None
    return pd.read_csv(layout.manifest, dtype=str, keep_default_na=False)


def manifest_settings(layout: DatasetLayout, manifest: pd.DataFrame | None) -> dict | None:
    """The preprocessing settings the processed files were made with, from the manifest's settings columns;
    None when there is no manifest or it does not record them (files made by other tools).

    The files, not the config, decide what a model's inputs are: a config that disagrees is refused by the
    caller, and these values are what checkpoints store for prediction."""
    if manifest is None or "fingerprint" not in manifest.columns or "status" not in manifest.columns:
        return None
    done = manifest[manifest["status"].isin(("ok", "no_audio", "no_video"))]
    if done.empty:
        return None
    fingerprints = sorted(set(done["fingerprint"]))
    if len(fingerprints) > 1:
        raise DataError(f"{layout.manifest}: the processed clips were made with {len(fingerprints)} different settings "
                        f"(fingerprints {', '.join(fingerprints)}); re-run `python -m mmbehave.preprocess "
                        f"data.root={layout.root}` so that every clip is made the same way.")
    row = done.iloc[0]
    values: dict = {}
    for key in SETTINGS_COLUMNS:
        if key not in manifest.columns:
            return None
        text = row[key]
        if key == "frame_window":
            values[key] = json.loads(text) if text else None
        else:
            values[key] = float(text) if key == "clip_seconds" else int(text)
    return values


def modality_flags(manifest: pd.DataFrame | None, modality: str) -> dict[str, bool]:
    """clip_id -> whether the clip really has ``modality`` (``video`` / ``audio``): clips without a track train
    with that modality missing. Clips the manifest does not list have both."""
    column = f"has_{modality}"
    if manifest is None or column not in manifest.columns:
        return {}
    return dict(zip(manifest["clip_id"], manifest[column].str.lower().ne("false")))


def check_processed_clips(
    layout: DatasetLayout,
    tables: dict[str, pd.DataFrame],
    modalities: tuple[str, ...],
    num_frames: int,
    image_size: int,
    n_mels: int,
    progress: bool = False,
    manifest: pd.DataFrame | None = None,
) -> None:
    """Raise DataError naming the file and metadata row of the first clip that cannot be trained on.
    ``manifest``: the preprocessing manifest (``read_manifest``), whose failed clips are reported as such.

    Files that passed before, unchanged since (same names, sizes and modification times, same expectations),
    are not opened again: every run of a sweep would otherwise re-read the whole dataset before its first step.
    """
    failed = _failed_in_manifest(manifest)
    rows = [(split, index, clip_id) for split, t in tables.items() for index, clip_id in zip(t.index, t["clip_id"])]
    for split, index, clip_id in rows:
        if clip_id in failed:
            where = f"{layout.metadata_csv(split)}, row {csv_row(index)} (clip_id '{clip_id}')"
            raise DataError(f"{where}: preprocessing failed for this clip ({failed[clip_id]}). {PREPROCESS_HINT}")
    expected = {"modalities": list(modalities), "num_frames": num_frames, "image_size": image_size, "n_mels": n_mels}
    stamp = _files_stamp(layout, [clip_id for _, _, clip_id in rows], modalities, expected)
    if stamp is not None and stamp in _passed_stamps(layout):
        return
    mel_frames: int | None = None
    for split, index, clip_id in tqdm(rows, desc="checking clips", unit="clip", disable=not progress):
        where = f"{layout.metadata_csv(split)}, row {csv_row(index)} (clip_id '{clip_id}')"
        if "video" in modalities:
            _check_video(layout, clip_id, where, (num_frames, 3, image_size, image_size))
        if "audio" in modalities:
            frames = _check_mel(layout, clip_id, where, n_mels, mel_frames)
            mel_frames = mel_frames or frames
    if stamp is not None:
        _remember_passed(layout, stamp)


PASSED_FILE = ".checked.json"   # in processed/: stamps of file sets that passed the checks
PASSED_KEPT = 16                # the latest few (train+val, test, another modality, ...)


def _files_stamp(layout: DatasetLayout, clip_ids: list[str], modalities: tuple[str, ...], expected: dict) -> str | None:
    """A digest of what the check would read (each file's name, size and modification time) and what it would
    expect; None when a file is missing (the check then runs, and names it)."""
    digest = hashlib.sha256(json.dumps(expected, sort_keys=True).encode())
    for clip_id in clip_ids:
        paths = ([layout.video_frames(clip_id)] if "video" in modalities else []) + (
            [layout.mel_spectrogram(clip_id)] if "audio" in modalities else [])
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                return None
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _passed_stamps(layout: DatasetLayout) -> list[str]:
    try:
        return list(json.loads((layout.processed_dir / PASSED_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return []


def _remember_passed(layout: DatasetLayout, stamp: str) -> None:
    from mmbehave.core.atomic import write_text_atomic

    stamps = [s for s in _passed_stamps(layout) if s != stamp][-(PASSED_KEPT - 1):] + [stamp]
    try:
        write_text_atomic(layout.processed_dir / PASSED_FILE, json.dumps(stamps))
    except OSError:  # a read-only dataset: it is simply checked every time
        pass


def _failed_in_manifest(manifest: pd.DataFrame | None) -> dict[str, str]:
    if manifest is None or "status" not in manifest.columns:
        return {}
    bad = manifest[manifest["status"].str.startswith("failed")]
    return dict(zip(bad["clip_id"], bad["status"]))


def _check_video(layout: DatasetLayout, clip_id: str, where: str, expected: tuple[int, ...]) -> None:
    path = layout.video_frames(clip_id)
    if not path.is_file():
        raise DataError(f"{path}: missing video frames for {where}. {PREPROCESS_HINT}")
    try:
        frames = torch.load(path, weights_only=True, mmap=True)
    except Exception as error:  # any unpickling/zip failure means the same thing to the user
        raise DataError(f"{path}: unreadable tensor for {where} ({type(error).__name__}: {error}). {PREPROCESS_HINT}") from error
    if not isinstance(frames, torch.Tensor):
        raise DataError(f"{path}: holds a {type(frames).__name__}, expected a uint8 tensor (T, C, H, W), for {where}.")
    if frames.dtype != torch.uint8:
        raise DataError(f"{path}: dtype {frames.dtype}, expected torch.uint8 frames (T, C, H, W), for {where}. "
                        "Save frames as uint8 0-255, not normalised floats.")
    if tuple(frames.shape) != expected:
        raise DataError(f"{path}: shape {tuple(frames.shape)}, expected (T, C, H, W) = {expected} from "
                        f"data.num_frames and data.image_size, for {where}. "
                        "Re-run preprocessing with these settings or set data.num_frames/data.image_size to match.")


def _check_mel(layout: DatasetLayout, clip_id: str, where: str, n_mels: int, mel_frames: int | None) -> int:
    path = layout.mel_spectrogram(clip_id)
    if not path.is_file():
        raise DataError(f"{path}: missing mel spectrogram for {where}. {PREPROCESS_HINT}")
    try:
        mel = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:
        raise DataError(f"{path}: unreadable .npy for {where} ({type(error).__name__}: {error}). {PREPROCESS_HINT}") from error
    if not np.issubdtype(mel.dtype, np.floating):
        raise DataError(f"{path}: dtype {mel.dtype}, expected a float log-mel (n_mels, time), for {where}.")
    if mel.ndim != 2 or mel.shape[0] != n_mels:
        raise DataError(f"{path}: shape {tuple(mel.shape)}, expected (n_mels={n_mels}, time) from data.n_mels, for {where}.")
    bad = int(mel.size - np.count_nonzero(np.isfinite(mel)))
    if bad:  # a NaN here surfaces hours later as "loss is nan", or silently as val/loss nan
        raise DataError(f"{path}: {bad} NaN or infinite value(s) in the log-mel spectrogram, for {where}. "
                        f"{PREPROCESS_HINT}")
    if mel_frames is not None and mel.shape[1] != mel_frames:
        raise DataError(f"{path}: {mel.shape[1]} time frames, but other clips have {mel_frames}, for {where}. "
                        "All clips must be cropped/padded to the same data.clip_seconds.")
    return int(mel.shape[1])
