"""The monitored metric (``training.monitor``): which epoch is best, and when to stop early.

One metric picks ``best.pth``, drives early stopping and is a sweep's default objective, so that the three
never disagree about what "better" means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def is_better(value: float, best: float | None, mode: str) -> bool:
    """``mode`` max: higher is better; min: lower. NaN is never better; anything beats no value yet."""
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if mode == "max" else value < best


def mode_for(name: str) -> str:
    """The direction of a metric known only by name: losses improve downwards, every other metric upwards."""
    return "min" if name.endswith("loss") else "max"


@dataclass
class Monitor:
    """Per-epoch metrics so far, and the best value of ``metric`` with its epoch."""

    metric: str
    mode: str                               # max | min
    patience: int | None = None             # epochs without improvement before stopping; None: never
    history: list[dict] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record an epoch's metrics; True if the monitored value improved."""
        if self.metric not in metrics:
            from mmbehave.core.errors import ConfigError

            raise ConfigError(f"training.monitor={self.metric} is not a logged metric (logged: {', '.join(metrics)}).")
        self.history.append({"epoch": epoch, **metrics})
        if is_better(metrics[self.metric], self.best, self.mode):
            self.best, self.best_epoch = metrics[self.metric], epoch
            return True
        return False

    def stalled(self, epoch: int) -> bool:
        """True once ``patience`` epochs have passed without a better value."""
        if self.patience is None:
            return False
        since = epoch - (self.best_epoch if self.best_epoch is not None else -1)
        return since >= self.patience

    @classmethod
    def resumed(cls, metric: str, mode: str, patience: int | None, history: list[dict]) -> Monitor:
        """The monitor as it stood after the checkpoint's last epoch."""
        monitor = cls(metric, mode, patience)
        for row in history:
            monitor.update(row["epoch"], {k: v for k, v in row.items() if k != "epoch"})
        return monitor
