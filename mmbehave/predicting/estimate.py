"""``estimate=true``: how long the whole input will take on this machine, from a timed sample, before anything is
written (the question camera-trap users ask before they start a season's archive)."""

from __future__ import annotations

import time
from pathlib import Path

from mmbehave.predicting.archive import predict_archive
from mmbehave.predicting.clip_loading import ClipFiles

ESTIMATE_CLIPS = 12     # clips timed (spread over the input), after a warm-up one


def estimate(trained, clips: list[Path], segmenting, device: str, batch_size: int, workers: int,
             threads: int) -> float:
    """Time a sample of the input on this machine and print the expected wall time for all of it."""
    count = min(len(clips), ESTIMATE_CLIPS)
    sample = [clips[round(i * (len(clips) - 1) / max(count - 1, 1))] for i in range(count)]
    predict_archive(trained, ClipFiles(sample[:1], trained.preprocess, segmenting, threads), device=device,
                    batch_size=batch_size, num_workers=0, on_batch=lambda *_: None, progress=False)  # warm-up
    started = time.perf_counter()
    run = predict_archive(trained, ClipFiles(sample, trained.preprocess, segmenting, threads), device=device,
                          batch_size=batch_size, num_workers=workers, on_batch=lambda *_: None, progress=False)
    per_clip = (time.perf_counter() - started) / max(count, 1)
    total = per_clip * len(clips)
    print(f"Estimate: {len(clips)} clip(s) in about {format_duration(total)} on this machine "
          f"({1 / per_clip:.2f} clips/s with {workers} worker(s) on {device}, timed on {count} clip(s) spread over the "
          f"input, {len(run.failures)} of them unreadable). Nothing was written.")
    return total


def format_duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
