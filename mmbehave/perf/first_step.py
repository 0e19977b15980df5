"""The start-up cost a user waits through (imports, config, data checks, model build): one log line when the
first training step is done, which ``mmbehave.benchmark``'s start-up row reads from a real command's output."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from mmbehave.training.hooks import RunHooks

log = logging.getLogger("mmbehave.training.run")


class FirstStepClock(RunHooks):
    """Logs, once, how long after the process started its first training step finished."""

    def __init__(self) -> None:
        self.done = False

    def step_done(self) -> None:
        if self.done:
            return
        self.done = True
        age = seconds_since_process_start()
        if age is not None:
            log.info("First training step done %.2f s after the process started", age)


def seconds_since_process_start() -> float | None:
    """Wall seconds since this process was started (Linux /proc; None elsewhere)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return time.time() - (boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
