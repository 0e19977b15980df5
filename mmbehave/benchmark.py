"""Speed and memory of a configured model, on random inputs of the configured shapes (no data needed).

    python -m mmbehave.benchmark                                   # the CPU default
    python -m mmbehave.benchmark experiment=guide video_encoder.pretrained=false audio_encoder.pretrained=false

Prints (and returns) training throughput (forward + backward + optimizer step), inference latency per
clip, parameter counts and peak memory. Numbers for the README come from here, never from timed tests.
"""

from __future__ import annotations

import json
import resource
import time

import torch
from omegaconf import DictConfig

from mmbehave.core.cli import command
from mmbehave.core.config_checks import check_config, configured_modalities
from mmbehave.core.instantiate import build
from mmbehave.core.precision import autocast
from mmbehave.training.loss import MultiTaskLoss


def synthetic_batch(cfg: DictConfig, modalities: tuple[str, ...], batch_size: int, device: torch.device) -> dict:
    data = cfg.data
    batch = {}
    if "video" in modalities:
        batch["video"] = torch.rand(batch_size, 3, data.num_frames, data.image_size, data.image_size, device=device)
    if "audio" in modalities:
        frames = cfg.benchmark.mel_frames or 1 + int(data.sample_rate * data.clip_seconds) // int(data.hop_length)
        batch["audio"] = torch.randn(batch_size, 1, data.n_mels, frames, device=device)
    return batch


def timed(step, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def run_benchmark(cfg: DictConfig) -> dict:
    check_config(cfg)
    if cfg.hardware.torch_threads:
        torch.set_num_threads(int(cfg.hardware.torch_threads))
    device = torch.device(cfg.hardware.device)
    bench = cfg.benchmark
    modalities = configured_modalities(cfg)
    model = build(cfg.model, num_species=bench.num_species, num_behaviors=bench.num_behaviors).to(device)
    optimizer = build(cfg.optimizer)(params=[p for p in model.parameters() if p.requires_grad])
    loss_fn = MultiTaskLoss()
    batch_size = int(bench.batch_size)
    batch = synthetic_batch(cfg, modalities, batch_size, device)
    species = torch.randint(0, bench.num_species, (batch_size,), device=device)
    behavior = torch.randint(0, bench.num_behaviors, (batch_size,), device=device)

    def train_step() -> None:
        model.train()
        with autocast(device, cfg.hardware.precision):
            output = model(**batch)
        loss, _ = loss_fn(output.species_logits, output.behavior_logits, species, behavior)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer_step() -> None:
        model.eval()
        with autocast(device, cfg.hardware.precision):
            model(**batch)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_seconds = timed(train_step, int(bench.steps), int(bench.warmup_steps), device)
    infer_seconds = timed(infer_step, int(bench.steps), int(bench.warmup_steps), device)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "modalities": "+".join(modalities),
        "batch_size": batch_size,
        "precision": cfg.hardware.precision,
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_fusion": sum(p.numel() for p in model.fusion.parameters()),
        "train_clips_per_s": round(batch_size / train_seconds, 2),
        "infer_ms_per_clip": round(1000 * infer_seconds / batch_size, 3),
        # ru_maxrss is KiB on Linux: the whole process, model and activations included.
        "peak_host_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cuda":
        result["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result


@command("benchmark")
def main(cfg: DictConfig) -> None:
    print(json.dumps(run_benchmark(cfg), indent=2))


if __name__ == "__main__":
    main()
