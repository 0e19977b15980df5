"""Raw clips -> model inputs, for a whole dataset (see ``layout.py`` for where everything lives).

    raw/metadata/{split}.csv --read_split--> one job per clip:
        raw/<video_path> (default videos/<clip_id>.mp4)
            --read_clip (frames)-->                 processed/video_frames/<clip_id>.pt
        raw/<audio_path> (default: the video's own track)
            --read_clip (sound)--> --log_mel_spectrogram--> processed/mel_spectrograms/<clip_id>.npy
    --> processed/manifest.csv: one row per clip with its status and the settings that made its files

Statuses: ``ok``; ``no_audio`` (no audio track: a silent spectrogram is written and has_audio is false);
``no_video`` (an audio file, from a passive acoustic recorder: black frames are written, has_video is false);
``failed: <reason naming the file>`` (nothing written for the clip; the other clips go on).
Re-running skips clips whose files exist and whose manifest row has the current settings fingerprint and
the same source paths; changing any setting re-processes everything. Every file is written atomically, and
the manifest is written even on Ctrl-C, so finished clips are not redone.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import ClipReadError, DataError
from mmbehave.core.locks import exclusive
from mmbehave.core.progress import show_progress
from mmbehave.data.clip_inputs import (
    SETTINGS_COLUMNS,
    PreprocessSettings,
    preprocess_clip,
)
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.metadata import ID_COLUMN, read_metadata

log = logging.getLogger(__name__)

DONE_STATUSES = ("ok", "no_audio", "no_video")
SOURCE_COLUMNS = ("video_path", "audio_path")  # relative to raw/; audio_path empty = the video's own track
# The label columns follow with the table's other columns: preprocessing reads media, whatever the heads.
MANIFEST_COLUMNS = (ID_COLUMN, "split", "status", "has_audio", "has_video", *SOURCE_COLUMNS, *SETTINGS_COLUMNS,
                    "fingerprint")


FAILURES_SHOWN = 20


@dataclass
class PreprocessSummary:
    """What a run did. ``failed`` holds (clip_id, reason) pairs."""

    ok: int = 0
    no_audio: int = 0
    no_video: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    manifest: Path | None = None

    def add(self, clip_id: str, status: str) -> None:
        if status == "ok":
            self.ok += 1
        elif status == "no_audio":
            self.no_audio += 1
        elif status == "no_video":
            self.no_video += 1
        else:
            self.failed.append((clip_id, status.removeprefix("failed: ")))

    @property
    def total(self) -> int:
        return self.ok + self.no_audio + self.no_video + self.skipped + len(self.failed)

    def format(self) -> str:
        lines = [f"{self.total} clips: {self.ok} ok, {self.no_audio} without audio (silent spectrogram), "
                 f"{self.no_video} without video (audio files), {self.skipped} already up to date, "
                 f"{len(self.failed)} failed."]
        # A systematic failure (wrong folder, missing codec) fails every clip: show a screenful, not thousands.
        lines += [f"  FAILED {clip_id}: {reason}" for clip_id, reason in self.failed[:FAILURES_SHOWN]]
        if len(self.failed) > FAILURES_SHOWN:
            lines.append(f"  ... and {len(self.failed) - FAILURES_SHOWN} more failed clips: see the manifest's status column.")
        if self.manifest is not None:
            lines.append(f"Manifest: {self.manifest}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _ClipJob:
    clip_id: str
    video: Path
    audio: Path | None  # None: the video's own audio track
    frames_out: Path
    mel_out: Path


def _process_clip(job: _ClipJob, settings: PreprocessSettings) -> tuple[str, str, bool, bool]:
    """Preprocess one clip and write its two files. Returns (clip_id, status, has_audio, has_video); never
    raises for bad input."""
    try:
        clip = preprocess_clip(job.video, job.audio, settings)
    except ClipReadError as error:
        return job.clip_id, _failed(job, str(error)), False, False
    except Exception as error:  # one odd file must not stop the dataset: record it and go on
        return job.clip_id, _failed(job, f"{job.video}: {type(error).__name__}: {error}"), False, False
    with atomic_path(job.frames_out) as tmp:
        torch.save(clip.frames, tmp)
    with atomic_path(job.mel_out) as tmp:
        np.save(tmp, clip.mel)
    return job.clip_id, clip.status, clip.has_audio, clip.has_video


def _failed(job: _ClipJob, reason: str) -> str:
    """Remove the clip's outputs from an earlier run (they no longer match its source) and build the status."""
    job.frames_out.unlink(missing_ok=True)
    job.mel_out.unlink(missing_ok=True)
    return "failed: " + " ".join(reason.split())  # one line, so the manifest stays one row per clip


def preprocess_from_config(data_cfg: Mapping[str, Any], num_workers: int = 2, progress: bool = True,
                           splits: tuple[str, ...] = SPLITS) -> PreprocessSummary:
    """Preprocess the dataset at ``data_cfg.root`` with the settings in ``data_cfg`` (the ``data`` config group)."""
    return preprocess_dataset(data_cfg["root"], PreprocessSettings.from_config(data_cfg), num_workers=num_workers,
                              progress=progress, splits=splits, labels_dir=data_cfg.get("labels_dir"))


def preprocess_dataset(root: str | Path, settings: PreprocessSettings, num_workers: int = 2, progress: bool = True,
                       splits: tuple[str, ...] = SPLITS, labels_dir: str | Path | None = None) -> PreprocessSummary:
    """Preprocess every clip listed in ``raw/metadata/{split}.csv`` under ``root``; see the module docstring.

    Bad metadata (missing file or columns, duplicate ids) raises ``DataError`` before anything is written.
    ``num_workers`` <= 1 runs in this process (easiest to debug); otherwise one process per worker.
    """
    layout = DatasetLayout(Path(root).expanduser().resolve(), Path(labels_dir).expanduser() if labels_dir else None)
    tables = read_metadata(layout, splits, heads=None)  # ids checked across splits; labels are train's to check
    # One preprocessing run per dataset at a time: two with different settings would each write files and a
    # manifest, and the last manifest would describe files the other made.
    with exclusive(layout.processed_dir, waiting=f"Another run is preprocessing {layout.root}; waiting for it to "
                                                 "finish (its clips are then reused or redone as the settings say)."):
        return _preprocess_locked(layout, tables, settings, num_workers, progress, splits)


def _preprocess_locked(layout: DatasetLayout, tables: dict[str, pd.DataFrame], settings: PreprocessSettings,
                       num_workers: int, progress: bool, splits: tuple[str, ...]) -> PreprocessSummary:
    _check_manifest_columns(layout, tables)
    previous = _read_manifest(layout)
    fixed = settings.manifest_values()
    summary = PreprocessSummary(manifest=layout.manifest)

    rows: dict[str, dict[str, str]] = {}  # clip_id -> manifest row, in metadata order; status set once known
    jobs: list[_ClipJob] = []
    for split, table in tables.items():
        for record in table.to_dict("records"):
            row, job = _plan_clip(layout, split, record, fixed)
            old = previous.get(job.clip_id)
            if old is not None and _up_to_date(old, row, job):
                row.update(status=old["status"], has_audio=old["has_audio"], has_video=old.get("has_video", "true"))
                summary.skipped += 1
            else:
                jobs.append(job)
            rows[job.clip_id] = row
    log.info("%s: %d clips, %d to process, %d up to date (settings fingerprint %s)", layout.root, len(rows),
             len(jobs), summary.skipped, fixed["fingerprint"])

    def record_result(clip_id: str, status: str, has_audio: bool, has_video: bool) -> None:
        rows[clip_id].update(status=status, has_audio=str(has_audio).lower(), has_video=str(has_video).lower())
        summary.add(clip_id, status)

    try:
        _run(jobs, settings, num_workers, progress, record_result)
    finally:
        # Even after Ctrl-C: a clip not reached keeps its old row (which still describes its files) or none;
        # rows of splits not processed this time stay, so a partial run does not forget the rest.
        finished = [row if "status" in row else previous.get(clip_id) for clip_id, row in rows.items()]
        kept = [row for clip_id, row in previous.items() if clip_id not in rows and row.get("split") not in splits]
        if jobs or list(previous.values()) != [row for row in finished if row is not None] + kept:
            _write_manifest(layout, [row for row in finished if row is not None] + kept)
    return summary


def _plan_clip(layout: DatasetLayout, split: str, record: dict[str, str],
               fixed: dict[str, str]) -> tuple[dict[str, str], _ClipJob]:
    """A metadata row -> its manifest row (no status yet) and the job that makes its files."""
    clip_id = record["clip_id"]
    video_rel = record.get("video_path", "").strip() or layout.default_video_path(clip_id)
    audio_rel = record.get("audio_path", "").strip()
    row = {**record, "split": split, "video_path": video_rel, "audio_path": audio_rel, **fixed}
    job = _ClipJob(clip_id, layout.raw_dir / video_rel, layout.raw_dir / audio_rel if audio_rel else None,
                   layout.video_frames(clip_id), layout.mel_spectrogram(clip_id))
    return row, job


def _up_to_date(old: dict[str, str], row: dict[str, str], job: _ClipJob) -> bool:
    """Done earlier with the same settings and sources, and both files still there."""
    return (old.get("fingerprint") == row["fingerprint"] and old.get("status") in DONE_STATUSES
            and all(old.get(column) == row[column] for column in SOURCE_COLUMNS)
            and job.frames_out.is_file() and job.mel_out.is_file())


def _check_manifest_columns(layout: DatasetLayout, tables: dict[str, pd.DataFrame]) -> None:
    """Extra metadata columns are copied into the manifest: they must not clash with its own."""
    reserved = set(MANIFEST_COLUMNS) - {ID_COLUMN} - set(SOURCE_COLUMNS)
    for split, table in tables.items():
        clashing = [column for column in table.columns if column in reserved]
        if clashing:
            raise DataError(f"{layout.metadata_csv(split)}: column(s) {', '.join(clashing)} clash with the "
                            "manifest's own columns; rename them.")


def _read_manifest(layout: DatasetLayout) -> dict[str, dict[str, str]]:
    """The previous run's rows by clip_id; empty if there is none or it is unreadable (then all is redone)."""
    if not layout.manifest.is_file():
        return {}
    try:
        frame = pd.read_csv(layout.manifest, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        log.warning("%s is unreadable (%s); every clip will be processed again.", layout.manifest, error)
        return {}
    if "clip_id" not in frame.columns:
        log.warning("%s has no clip_id column; every clip will be processed again.", layout.manifest)
        return {}
    return {row["clip_id"]: row for row in frame.to_dict("records")}


def _write_manifest(layout: DatasetLayout, rows: list[dict[str, str]]) -> None:
    """Manifest columns first, then the metadata's extra columns in the order first seen."""
    extra = list(dict.fromkeys(column for row in rows for column in row if column not in MANIFEST_COLUMNS))
    frame = pd.DataFrame(rows, columns=[*MANIFEST_COLUMNS, *extra]).fillna("")
    with atomic_path(layout.manifest) as tmp:
        frame.to_csv(tmp, index=False)


def _run(jobs: list[_ClipJob], settings: PreprocessSettings, num_workers: int, progress: bool,
         on_result: Callable[[str, str, bool, bool], None]) -> None:
    """Run the jobs inline or in ``num_workers`` processes, reporting each (clip_id, status, has_audio, has_video)."""
    show = show_progress(progress)  # no bar in logs and CI
    with tqdm(total=len(jobs), desc="preprocess", unit="clip", disable=not show) as bar:
        if num_workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                on_result(*_process_clip(job, settings))
                bar.update()
            return
        pool = ProcessPoolExecutor(min(num_workers, len(jobs)), mp_context=_worker_context(),
                                   initializer=_init_worker)
        try:
            futures = {pool.submit(_process_clip, job, settings): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as error:  # a worker died (say, a decoder crash): record it, go on
                    # Its files are left alone: the crash need not be this clip's fault.
                    reason = f"{job.video}: worker process failed ({type(error).__name__}: {error})"
                    result = (job.clip_id, "failed: " + " ".join(reason.split()), False, False)
                on_result(*result)
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Fork server, not fork: forking a parent whose threads hold locks (torch's pools, CUDA) can deadlock the
    child. Not plain spawn either: it re-imports torch in every worker (seconds each); the fork server imports
    this module once per parent process and forks workers from it."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _init_worker() -> None:
    # One thread per worker: the workers already use every core between them.
    torch.set_num_threads(1)
