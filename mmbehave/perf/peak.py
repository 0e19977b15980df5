"""The benchmark's ``peak`` row: what this machine's matrix units do at best, measured in the same run as the
rows that are compared against it (a shared or throttled CPU changes both alike).

Dense square matmuls, the largest kernels a model has, in fp32 and in bf16 autocast (AMX / AVX512-BF16 on a
CPU that has them, tensor cores on a GPU)."""

from __future__ import annotations

import time

import torch

from mmbehave.core.cpu_features import bf16_matrix_units


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype | None, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of ``size``² @ ``size``² matmuls (``dtype``: autocast to it; None: fp32), best of ``repeats``."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    context = (torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None
               else torch.autocast(device_type=device.type, enabled=False))
    best = float("inf")
    with context:
        for index in range(repeats + 2):  # two untimed first: oneDNN's kernel selection, the allocator
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index >= 2:
                best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


# Without bf16 matrix units a CPU emulates bf16 matmuls ~100x slower than fp32: a 2048² one takes a quarter of a
# minute, so the row measures a 512² one there (its rate says the same: bf16 does not pay on this CPU).
EMULATED_BF16_SIZE, EMULATED_BF16_REPEATS = 512, 3


def measured_peak(device: torch.device) -> dict:
    """{"fp32_gflop_per_s", "bf16_gflop_per_s", "bf16_over_fp32", "threads", "bf16_units", "bf16_matmul_size"}."""
    fp32 = matmul_flops_per_s(device, None) / 1e9
    units = bf16_matrix_units() if device.type == "cpu" else None
    size, repeats = (EMULATED_BF16_SIZE, EMULATED_BF16_REPEATS) if units is not None and not units.present else (2048, 10)
    bf16 = matmul_flops_per_s(device, torch.bfloat16, size, repeats) / 1e9
    return {"fp32_gflop_per_s": round(fp32, 1), "bf16_gflop_per_s": round(bf16, 1),
            "bf16_over_fp32": round(bf16 / fp32, 2), "threads": torch.get_num_threads(),
            "bf16_units": str(units) if units is not None else torch.cuda.get_device_name(device),
            "bf16_matmul_size": size}
