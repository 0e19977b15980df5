"""Predicting an archive: clips read by worker processes while this process runs the model, every batch's
results on disk before the next, a progress bar with clips/s and the time left.

    ClipFiles (workers) ─► ClipItem per file, in order ─► windows gathered until a batch is full
        ─► model ─► per clip: ClipRecord (probabilities per segment) ─► <stem>_probabilities.jsonl
        ─► unreadable clips ─► <stem>_errors.csv            (both appended in whole lines: state.py)

Nothing is held per clip beyond the batch being filled, so memory does not grow with the archive.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from mmbehave.core.precision import inference_casts
from mmbehave.metrics.epoch_scores import probabilities
from mmbehave.predicting.clip_loading import (
    ClipFiles,
    ClipItem,
    clip_loader,
    model_input,
    usable_cores,
)
from mmbehave.predicting.state import ClipRecord, file_key

log = logging.getLogger("mmbehave.predict")


@dataclass
class ArchiveRun:
    """What one pass over the clips did."""

    predicted: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0


def predict_archive(trained, files: ClipFiles, *, device: str, batch_size: int, num_workers: int,
                    on_batch: Callable[[list[ClipRecord], list[tuple[Path, str]]], None],
                    progress: bool) -> ArchiveRun:
    """Every clip of ``files``, in order; ``on_batch(records, failures)`` after each batch (where they are
    written to disk). Returns the counts and the failures."""
    run, started = ArchiveRun(), time.perf_counter()
    threads = torch.get_num_threads()
    if num_workers and torch.device(device).type == "cpu":  # the model takes the cores the readers leave
        torch.set_num_threads(max(1, usable_cores() - num_workers))
    batch: list[ClipItem] = []
    failed: list[tuple[Path, str]] = []
    bar = tqdm(total=len(files), desc="predicting", unit="clip", disable=not progress, smoothing=0.05)

    def flush() -> None:
        records = predict_items(trained, batch, device, batch_size)
        on_batch(records, list(failed))
        run.predicted += len(records)
        run.failures.extend(failed)
        bar.update(len(batch) + len(failed))
        bar.set_postfix(unreadable=len(run.failures), refresh=False)
        batch.clear()
        failed.clear()

    items = iter(clip_loader(files, num_workers))
    try:
        with inference_casts(torch.device(device)):
            read_and_predict(items, batch, failed, flush, batch_size)
    finally:
        torch.set_num_threads(threads)
        bar.close()
        shutdown = getattr(items, "_shutdown_workers", None)
        if shutdown is not None:  # at once, also when a signal stops the run: no worker outlives it
            shutdown()
    run.seconds = time.perf_counter() - started
    return run


def read_and_predict(items, batch: list, failed: list, flush: Callable[[], None], batch_size: int) -> None:
    """Clips as the readers hand them over, a batch flushed (predicted, written) whenever one is full."""
    for item in items:
        if item.error:
            log.warning("Skipped %s: %s", item.path, item.error)
            failed.append((item.path, item.error))
        else:
            batch.append(item)
        if sum(len(clip.windows) for clip in batch) >= batch_size or len(failed) >= batch_size:
            flush()
    if batch or failed:
        flush()


def predict_items(trained, items: list[ClipItem], device: str, batch_size: int) -> list[ClipRecord]:
    """Each clip's record: the probabilities of every window, the windows batched ``batch_size`` at a time."""
    windows = [(item, window) for item in items for window in item.windows]
    probs: list[dict[str, np.ndarray]] = []
    for first in range(0, len(windows), batch_size):
        probs += window_probabilities(trained, windows[first:first + batch_size], device)
    records, position = [], 0
    for item in items:
        count = len(item.windows)
        records.append(ClipRecord(str(item.path), file_key(item.path), item.has_video, item.has_audio,
                                  [(w.start, w.end) for w in item.windows], probs[position:position + count]))
        position += count
    return records


def window_probabilities(trained, windows: list, device: str) -> list[dict[str, np.ndarray]]:
    """{head: probabilities (softmax, or sigmoid for a multi head)} of each (item, window), in one forward pass."""
    converted = [model_input(window, trained.mel_mean, trained.mel_std) for _, window in windows]
    inputs = {}
    if "video" in trained.modalities:
        inputs["video"] = torch.stack([video for video, _ in converted]).to(device)
        inputs["video_present"] = torch.tensor([item.has_video for item, _ in windows], device=device)
    if "audio" in trained.modalities:
        inputs["audio"] = torch.stack([audio for _, audio in converted]).to(device)
        inputs["audio_present"] = torch.tensor([item.has_audio for item, _ in windows], device=device)
    with torch.no_grad():
        output = trained.model(**inputs)
    probs = {head.name: probabilities(head, output.logits[head.name]) for head in trained.heads}
    return [{head: values[row] for head, values in probs.items()} for row in range(len(windows))]
