"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio`` of the peak.

``training.lr_schedule`` in config targets ``warmup_cosine_schedule`` (a partial, in epochs); the run adds
the optimizer and the number of optimizer steps per epoch, which depend on the data.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> LambdaLR:
    """Stepped once per optimizer step. The multiplier is a pure function of the step, so resuming is exact."""

    def multiplier(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, multiplier)


def warmup_cosine_schedule(optimizer: Optimizer, *, steps_per_epoch: int, num_epochs: int, warmup_epochs: float = 1.0,
                           min_lr_ratio: float = 0.01) -> LambdaLR:
    """``warmup_cosine`` with its lengths in epochs (``warmup_epochs`` may be fractional)."""
    return warmup_cosine(optimizer, steps_per_epoch * num_epochs, int(steps_per_epoch * float(warmup_epochs)), min_lr_ratio)
