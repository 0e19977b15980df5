"""The work of ``python -m mmbehave.benchmark``: each measurement beside its bound, as ratios with targets.
Each subject is a module of its own: model_speed (the model alone), pipeline (loop, loader, start-up, cached
sweep), prediction_rows, sweep_schedule, frozen_sweep, time_to_good; benchmark_table prints them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from omegaconf import DictConfig

from mmbehave.domain.config_checks import check_config
from mmbehave.perf.benchmark_table import markdown
from mmbehave.perf.targets import MEASUREMENTS

__all__ = ["markdown", "run_benchmark"]


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
    if "precision" in wanted:
        from mmbehave.perf.precision_rows import precision_comparison

        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            results["precision"] = precision_comparison(cfg, overrides, Path(scratch))
    if "int8" in wanted:
        from mmbehave.perf.int8_rows import int8_comparison

        results["int8"] = int8_comparison(cfg, overrides)
    if wanted & {"predict", "predict_memory"}:
        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            from mmbehave.perf.prediction_rows import predict_rows

            results.update(predict_rows(cfg, Path(scratch), wanted))
    if "schedule" in wanted:
        from mmbehave.perf.sweep_schedule import schedule_comparison

        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            results["schedule"] = schedule_comparison(cfg, overrides, Path(scratch))
    if "frozen_sweep" in wanted:
        from mmbehave.perf.frozen_sweep import frozen_sweep_against_one_training

        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            results["frozen_sweep"] = frozen_sweep_against_one_training(cfg, overrides, Path(scratch))
    if "time_to_good" in wanted:
        from mmbehave.perf.time_to_good import time_to_good

        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            results["time_to_good"] = time_to_good(cfg, overrides, Path(scratch))
    if "distill" in wanted:
        from mmbehave.perf.distill_rows import distill_comparison

        results["distill"] = distill_comparison(cfg, overrides)
    if "active_learning" in wanted:
        from mmbehave.perf.active_learning_rows import active_learning_comparison

        results["active_learning"] = active_learning_comparison(cfg, overrides)
    if "pretraining" in wanted:
        from mmbehave.perf.pretraining_rows import pretraining_comparison

        results["pretraining"] = pretraining_comparison(cfg, overrides)
    if wanted - {"peak", "model", "predict", "predict_memory", "schedule", "frozen_sweep", "time_to_good", "precision",
                 "int8", "distill", "active_learning", "pretraining"}:
        with tempfile.TemporaryDirectory(prefix="mmbehave-benchmark-") as scratch:
            from mmbehave.perf.pipeline import pipeline

            results.update(pipeline(cfg, overrides, Path(scratch), wanted))
    return results


def benchmark_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
