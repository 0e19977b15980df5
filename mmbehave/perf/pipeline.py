"""The benchmark's rows of the real pipeline: the training loop against bare steps, the loader against what
training consumes, start-up against bare imports, and the cached sweep against its FLOPs bound."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def pipeline(cfg: DictConfig, overrides: list[str], work: Path, wanted: set[str]) -> dict:
    """The real loop, the loader, start-up and the cached sweep, each with its bound (``mmbehave.perf``)."""
    from mmbehave.data.prepared import make_dataset_files, prepare_data
    from mmbehave.perf import measurements as m
    from mmbehave.training.parts import build_parts
    from mmbehave.training.seeding import seed_everything
    from mmbehave.training.settings import read_run_settings

    results: dict = {}
    settings = read_run_settings(cfg)
    seed_everything(settings.seed)
    make_dataset_files(cfg.data)  # generates the benchmark data if needed
    prepared = prepare_data(settings.data, settings.modalities, splits=("train", "val"), heads=settings.heads)
    parts = build_parts(cfg, settings, prepared)
    count = int(cfg.benchmark.train_batches or len(parts.train_loader))
    batches = m.held_batches(parts, count)

    if wanted & {"loop", "loader"}:
        # The real command in its own process, then the bare steps here, in turns (two rounds), the fastest of each.
        epochs = int(cfg.benchmark.epochs)
        rounds = [(m.real_loop(overrides, work / f"loop{i}", epochs, count, int(cfg.training.batch_size)),
                   m.bare_steps(parts, batches, repeats=max(1, epochs - 1))) for i in range(2)]
        real = max((r for r, _ in rounds), key=lambda r: r["clips_per_s"])
        bare = max((b for _, b in rounds), key=lambda b: b["clips_per_s"])
        results["loop"] = {"real_clips_per_s": real["clips_per_s"], "bare_clips_per_s": bare["clips_per_s"],
                           "ratio": real["clips_per_s"] / bare["clips_per_s"], "checkpoint_s_per_epoch": real["save_s"],
                           **m.gpu_utilisation(parts, batches, bare["epoch_s"])}
        whole = max((r for r, _ in rounds), key=lambda r: r["whole_clips_per_s"])
        results["epoch"] = {"whole_clips_per_s": whole["whole_clips_per_s"], "bare_clips_per_s": bare["clips_per_s"],
                            "ratio": whole["whole_clips_per_s"] / bare["clips_per_s"], "whole_epoch_s": whole["whole_epoch_s"],
                            "train_s": whole["epoch_s"], "val_s": whole["val_s"], "save_s": whole["save_s"]}
        if "loader" in wanted:
            loader = m.loader_speed(parts, count)
            results["loader"] = {"loader_clips_per_s": loader["clips_per_s"], "training_clips_per_s": real["clips_per_s"],
                                 "ratio": loader["clips_per_s"] / real["clips_per_s"]}
    if "startup" in wanted:
        started = m.startup(overrides, work / "startup")
        imports = m.import_seconds(work / "imports")
        if started["first_step_s"]:
            results["startup"] = {"first_step_s": started["first_step_s"], "imports_s": imports,
                                  "ratio": started["first_step_s"] / imports, "peak_host_mib": started["peak_host_mib"]}
    if "sweep" in wanted:
        bound = m.cache_bound(parts, batches[0])
        sweep = m.sweep_with_and_without_cache(cfg, overrides, work / "sweep")
        results["sweep"] = {**sweep, **bound, "ratio": sweep["speedup"] / bound["bound"]}
    return results
