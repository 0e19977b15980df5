"""FLOPs of one training step, counted by torch (``torch.utils.flop_counter``), not estimated by hand."""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense bf16 peak of the GPUs a lab is likely to have (tensor cores, no sparsity), for FLOPs utilisation.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0,
                    "RTX 4090": 165.0, "RTX 3090": 71.0}


def count_flops(step: Callable[[], None]) -> int:
    """Floating-point operations ``step()`` performs (forward and backward, as torch dispatches them)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def peak_flops(device: torch.device) -> float | None:
    """The device's dense bf16 peak in FLOP/s, when it is one we know; None otherwise (and on the CPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None
