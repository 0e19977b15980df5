"""The benchmark's ``model`` row: the configured model alone on random inputs of the configured shapes, a
training step and an inference step timed, with FLOPs against the device's peak where it has one."""

from __future__ import annotations

import resource

import torch
from omegaconf import DictConfig

from mmbehave.core.instantiate import build
from mmbehave.core.precision import autocast
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.domain.config_checks import configured_modalities
from mmbehave.domain.heads import heads_from_config
from mmbehave.models.precision_plan import apply_plan, example_inputs, plan_precision
from mmbehave.perf.measurements import timed
from mmbehave.training.loss import HeadsLoss


def synthetic_batch(cfg: DictConfig, modalities: tuple[str, ...], batch_size: int, device: torch.device) -> dict:
    data = cfg.data
    batch = {}
    if "video" in modalities:
        batch["video"] = torch.rand(batch_size, 3, data.num_frames, data.image_size, data.image_size, device=device)
    if "audio" in modalities:
        frames = cfg.benchmark.mel_frames or 1 + int(data.sample_rate * data.clip_seconds) // int(data.hop_length)
        batch["audio"] = torch.randn(batch_size, 1, data.n_mels, frames, device=device)
    return batch


def model_on_random_inputs(cfg: DictConfig, peak: dict | None = None) -> dict:
    """The configured model alone, on random inputs of the configured shapes: training step (forward, backward,
    AdamW step) clips/s, inference latency, parameter counts, peak memory; on a CPU, the counted FLOPs of each
    step per second against ``peak`` (the ``peak`` row: this run's fp32 and bf16 matmul GFLOP/s)."""
    from mmbehave.training.parts import parameter_groups

    device = torch.device(cfg.hardware.device)
    bench = cfg.benchmark
    modalities = configured_modalities(cfg)
    heads = heads_from_config(cfg)
    # Head sizes only shape the last Linear: the species head gets num_species classes, any other num_behaviors.
    sizes = {h.name: int(bench.num_species if h.name == "species" else bench.num_behaviors) for h in heads}
    model = build(cfg.model, num_classes=sizes).to(device)
    plan = apply_plan(model, plan_precision(model, str(cfg.hardware.precision), device,
                                            example_inputs(PreprocessSettings.from_config(cfg.data), modalities),
                                            float(cfg.hardware.get("bf16_min_gflop", 1.0))))
    optimizer = build(cfg.optimizer)(params=parameter_groups(model))
    loss_fn = HeadsLoss(heads)
    batch_size = int(bench.batch_size)
    batch = synthetic_batch(cfg, modalities, batch_size, device)
    targets = {h.name: (torch.randint(0, 2, (batch_size, sizes[h.name]), device=device).float() if h.multi
                        else torch.randint(0, sizes[h.name], (batch_size,), device=device)) for h in heads}

    def train_step() -> None:
        model.train()
        with autocast(device, cfg.hardware.precision):
            output = model(**batch)
        loss, _ = loss_fn(output.logits, targets)
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
        "precision": plan.line(),
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_fusion": sum(p.numel() for p in model.fusion.parameters()),
        "train_clips_per_s": round(batch_size / train_seconds, 2),
        "infer_ms_per_clip": round(1000 * infer_seconds / batch_size, 3),
        # ru_maxrss is KiB on Linux: the whole process, model and activations included.
        "peak_host_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    from mmbehave.perf.flops import count_flops, peak_flops

    if device.type == "cuda":
        result["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        known = peak_flops(device)
        if known:
            result["mfu"] = round(count_flops(train_step) / train_seconds / known, 4)
    elif peak:
        result.update(utilisation("train", count_flops(train_step) / train_seconds / 1e9, peak))
        result.update(utilisation("infer", count_flops(infer_step) / infer_seconds / 1e9, peak))
    return result


def utilisation(step: str, gflop_per_s: float, peak: dict) -> dict:
    """The step's counted GFLOP/s, and its share of this run's fp32 and bf16 matmul peaks."""
    return {f"{step}_gflop_per_s": round(gflop_per_s, 1),
            f"{step}_of_fp32_peak": round(gflop_per_s / peak["fp32_gflop_per_s"], 3),
            f"{step}_of_bf16_peak": round(gflop_per_s / peak["bf16_gflop_per_s"], 3)}
