"""Numeric precision names (``hardware.precision``, ``precision=``) and the autocast contexts they mean.

``auto`` is decided per part of the model (``mmbehave.models.precision_plan``); the other names are one
precision for the whole forward pass."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Names only, so that config checks answer before torch loads.
PRECISION_NAMES = ("auto", "fp32", "bf16", "fp16")


def read_precision(value, device: str, key: str) -> str:
    """``<key>=auto | fp32 | bf16 | fp16`` checked (fp16: CUDA only); ConfigError names the key."""
    from mmbehave.core.errors import ConfigError

    value = str(value)
    if value not in PRECISION_NAMES:
        raise ConfigError(f"{key}={value}: use one of {', '.join(PRECISION_NAMES)}.")
    if value == "fp16" and not device.startswith("cuda"):
        raise ConfigError(f"{key}=fp16 needs a CUDA device; use auto, bf16 or fp32 on a CPU.")
    return value


def autocast_dtype(precision: str) -> torch.dtype | None:
    import torch

    return {"auto": None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, precision: str):
    """Mixed precision for ``bf16`` / ``fp16`` over the whole forward pass; nothing for ``fp32`` and for ``auto``
    (whose parts each enter their own, ``part_autocast``)."""
    import torch

    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def part_autocast(device: torch.device, precision: str | None):
    """One part of a model in its planned precision: ``bf16`` autocast, ``fp32`` with autocast off (inside a
    bf16 part or a whole-model autocast), None: whatever surrounds it."""
    import torch

    if precision is None:
        return contextlib.nullcontext()
    if precision == "fp32":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=autocast_dtype(precision))


def inference_casts(device: torch.device):
    """Held around a whole inference pass (weights that do not change): every bf16 part inside casts each of its
    weights once and reuses the copy, instead of casting them again for every batch (torch keeps autocast's
    casts until the outermost autocast context ends; this one, itself disabled, is that outermost context).
    VideoMAE-Base at batch 2: 86M weights re-cast a batch cost about a fifth of the bf16 forward. Never around
    training steps, whose weights change after each."""
    import torch

    return torch.autocast(device_type=torch.device(device).type, enabled=False)
