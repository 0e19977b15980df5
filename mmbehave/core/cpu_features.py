"""Whether this CPU multiplies bf16 matrices natively (Intel AMX-BF16 or AVX512-BF16), which is what makes
``hardware.precision=auto`` choose bf16 on a CPU at all.

Asked of torch first (what its oneDNN kernels will use), then of /proc/cpuinfo's flags. ``MMBEHAVE_CPU_BF16=0``
(or ``1``) overrides the answer: to see what a CPU without those units would run, or to rule bf16 out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

OVERRIDE = "MMBEHAVE_CPU_BF16"
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo's names of the two kinds of bf16 matrix units


@dataclass(frozen=True)
class Bf16Units:
    present: bool
    source: str   # how that was found: which flags, torch's probe, or the override

    def __str__(self) -> str:
        return f"{'has' if self.present else 'has no'} bf16 matrix units ({self.source})"


def bf16_matrix_units() -> Bf16Units:
    forced = os.environ.get(OVERRIDE, "").strip()
    if forced in ("0", "1"):
        return Bf16Units(forced == "1", f"{OVERRIDE}={forced}")
    found = _torch_probe()
    if found is not None:
        return found
    flags = _cpuinfo_flags()
    named = [flag for flag in BF16_FLAGS if flag in flags]
    return Bf16Units(bool(named), ", ".join(named) if named else f"no {' or '.join(BF16_FLAGS)} in /proc/cpuinfo")


def _torch_probe() -> Bf16Units | None:
    """torch's own answer (private helpers, present since torch 2.3; None where this torch lacks them)."""
    import torch

    probes = {"amx_bf16": getattr(torch.cpu, "_is_amx_tile_supported", None),
              "avx512_bf16": getattr(torch.cpu, "_is_avx512_bf16_supported", None)}
    if any(probe is None for probe in probes.values()):
        return None
    named = [flag for flag, probe in probes.items() if probe()]
    return Bf16Units(bool(named), f"torch: {', '.join(named)}" if named else "torch: no amx_bf16 or avx512_bf16")


def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()
