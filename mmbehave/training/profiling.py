"""A torch profiler trace of a few training steps (``training.profile_steps``, ``debug=profile``).

    step 1: skipped (first-call allocations) ─► step 2: warm-up ─► steps 3 .. 2 + N: recorded
    ─► <run>/profile/trace.json (chrome://tracing, ui.perfetto.dev) and profile/summary.txt (costliest ops)
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Iterator

import torch

from mmbehave.core.atomic import write_text_atomic

log = logging.getLogger(__name__)
SKIPPED_STEPS, WARMUP_STEPS = 1, 1


@contextlib.contextmanager
def step_profiler(steps: int, out_dir: Path) -> Iterator[Callable[[], None]]:
    """Yields the function to call after every training step; records ``steps`` of them (0: no profiling)."""
    if steps <= 0:
        yield lambda: None
        return
    from torch.profiler import ProfilerActivity, profile, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    written: list[Path] = []

    def write(profiler) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        profiler.export_chrome_trace(str(out_dir / "trace.json"))
        sort_by = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        write_text_atomic(out_dir / "summary.txt", profiler.key_averages().table(sort_by=sort_by, row_limit=30))
        written.append(out_dir)
        log.info("Profile of %d training steps: %s (trace.json, summary.txt)", steps, out_dir)

    plan = schedule(wait=SKIPPED_STEPS, warmup=WARMUP_STEPS, active=steps, repeat=1)
    with profile(activities=activities, schedule=plan, record_shapes=True, on_trace_ready=write) as profiler:
        yield profiler.step
    if not written:
        log.warning("training.profile_steps=%d: the run had fewer than %d training steps, so nothing was recorded; "
                    "raise training.limit_train_batches.", steps, SKIPPED_STEPS + WARMUP_STEPS + steps)
