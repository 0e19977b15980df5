"""The work of ``python -m mmbehave.benchmark``: each measurement beside its bound, as ratios with targets.
Each subject is a module of its own: model_speed (the model alone), pipeline (loop, loader, start-up, cached
sweep), prediction_rows, sweep_schedule, frozen_sweep, time_to_good; benchmark_table prints them."""

from __future__ import annotations

import tempfile
from importlib import import_module
from pathlib import Path

import torch
from omegaconf import DictConfig

from mmbehave.domain.config_checks import check_config
from mmbehave.perf.benchmark_table import markdown
from mmbehave.perf.targets import MEASUREMENTS

__all__ = ["markdown", "run_benchmark"]

# Rows measured by one function of (cfg, overrides, scratch folder), imported only when asked for
SCRATCH_ROWS = {"precision": ("mmbehave.perf.precision_rows", "precision_comparison"),
                "schedule": ("mmbehave.perf.sweep_schedule", "schedule_comparison"),
                "frozen_sweep": ("mmbehave.perf.frozen_sweep", "frozen_sweep_against_one_training"),
                "time_to_good": ("mmbehave.perf.time_to_good", "time_to_good")}
# Rows of (cfg, overrides) that keep each run's result in a folder of their own, so a killed measurement continues
KEPT_ROWS = {"int8": ("mmbehave.perf.int8_rows", "int8_comparison"),
             "distill": ("mmbehave.perf.distill_rows", "distill_comparison"),
             "active_learning": ("mmbehave.perf.active_learning_rows", "active_learning_comparison"),
             "pretraining": ("mmbehave.perf.pretraining_rows", "pretraining_comparison")}


def run_benchmark(cfg: DictConfig) -> dict:
    check_config(cfg)
    if cfg.hardware.torch_threads:
        torch.set_num_threads(int(cfg.hardware.torch_threads))
    wanted = set(cfg.benchmark.measure)
    unknown = wanted - set(MEASUREMENTS)
    if unknown:
        from mmbehave.core.errors import ConfigError

        raise ConfigError(f"benchmark.measure={sorted(wanted)}: {', '.join(sorted(unknown))} is not one of "
                          f"{', '.join(MEASUREMENTS)}.")
    results: dict = {}
    overrides = [o for o in benchmark_overrides() if not o.startswith("benchmark.")]  # the runs it starts get these
    if wanted & {"peak", "model"}:  # the model row's FLOPs are put against this run's own peak
        from mmbehave.perf.peak import measured_peak

        results["peak"] = measured_peak(torch.device(cfg.hardware.device))
    if "model" in wanted:
        from mmbehave.perf.model_speed import model_on_random_inputs

        results["model"] = model_on_random_inputs(cfg, results["peak"])
    if wanted & {"predict", "predict_memory"}:
        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            from mmbehave.perf.prediction_rows import predict_rows

            results.update(predict_rows(cfg, Path(scratch), wanted))
    for name, (module, function) in SCRATCH_ROWS.items():
        if name in wanted:
            with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
                results[name] = getattr(import_module(module), function)(cfg, overrides, Path(scratch))
    for name, (module, function) in KEPT_ROWS.items():
        if name in wanted:
            results[name] = getattr(import_module(module), function)(cfg, overrides)
    if wanted - {"peak", "model", "predict", "predict_memory", *SCRATCH_ROWS, *KEPT_ROWS}:
        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            from mmbehave.perf.pipeline import pipeline

            results.update(pipeline(cfg, overrides, Path(scratch), wanted))
    return results


def benchmark_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
