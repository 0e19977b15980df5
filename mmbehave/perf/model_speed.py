"""The benchmark's ``model`` row: the configured model alone on random inputs of the configured shapes, a
training step and an inference step timed, with FLOPs against the device's peak where it has one."""

from __future__ import annotations

import resource
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from mmbehave.core.instantiate import build
from mmbehave.core.precision import inference_casts, part_autocast
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


@dataclass
class ModelBench:
    """The model, its optimizer and one batch of random inputs: what each timed step runs, in whatever
    precision plan the model has at the time (``apply_plan``)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: HeadsLoss
    batch: dict
    targets: dict
    device: torch.device

    def train_step(self) -> None:
        self.model.train()
        loss, _ = self.loss_fn(self.model(**self.batch).logits, self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def infer_step(self) -> None:
        self.model.eval()
        self.model(**self.batch)

    @torch.no_grad()
    def encode_step(self) -> None:  # what building a feature cache runs: the video encoder alone
        with part_autocast(self.device, self.model.part_precision.get("video_encoder")):
            self.model.video_encoder(self.batch["video"])

    def seconds(self, steps: int, warmup: int) -> dict[str, float | None]:
        """Seconds a batch: {"train", "infer", "encode" (None without video)}."""
        times: dict[str, float | None] = {"train": timed(self.train_step, steps, warmup, self.device)}
        with inference_casts(self.device):  # as evaluate and predict run: each weight cast to bf16 once
            times["infer"] = timed(self.infer_step, steps, warmup, self.device)
            times["encode"] = timed(self.encode_step, steps, warmup, self.device) if "video" in self.batch else None
        return times


def model_bench(cfg: DictConfig, modalities: tuple[str, ...]) -> ModelBench:
    from mmbehave.training.parts import parameter_groups

    device, bench = torch.device(cfg.hardware.device), cfg.benchmark
    heads = heads_from_config(cfg)
    # Head sizes only shape the last Linear: the species head gets num_species classes, any other num_behaviors.
    sizes = {h.name: int(bench.num_species if h.name == "species" else bench.num_behaviors) for h in heads}
    model = build(cfg.model, num_classes=sizes).to(device)
    batch_size = int(bench.batch_size)
    targets = {h.name: (torch.randint(0, 2, (batch_size, sizes[h.name]), device=device).float() if h.multi
                        else torch.randint(0, sizes[h.name], (batch_size,), device=device)) for h in heads}
    return ModelBench(model, build(cfg.optimizer)(params=parameter_groups(model)), HeadsLoss(heads),
                      synthetic_batch(cfg, modalities, batch_size, device), targets, device)


def model_on_random_inputs(cfg: DictConfig, peak: dict | None = None) -> dict:
    """The configured model alone, on random inputs of the configured shapes: training step (forward, backward,
    AdamW step) clips/s, inference and video-encoding latency, parameter counts, peak memory; when the configured
    precision is not fp32, fp32 too, in turns with it in the same process (``speedup_*``); on a CPU, the counted
    FLOPs of each step per second against ``peak`` (the ``peak`` row: this run's matmul GFLOP/s)."""
    modalities = configured_modalities(cfg)
    bench = model_bench(cfg, modalities)
    device, batch_size, requested = bench.device, int(cfg.benchmark.batch_size), str(cfg.hardware.precision)
    example = example_inputs(PreprocessSettings.from_config(cfg.data), modalities)
    plans = {name: plan_precision(bench.model, name, device, example, float(cfg.hardware.get("bf16_min_gflop", 1.0)))
             for name in dict.fromkeys([requested, "fp32"])}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rounds: dict[str, list[dict]] = {name: [] for name in plans}
    for _ in range(2 if len(plans) > 1 else 1):  # in turns: a machine that slows down slows both alike
        for name, plan in plans.items():
            apply_plan(bench.model, plan)
            rounds[name].append(bench.seconds(int(cfg.benchmark.steps), int(cfg.benchmark.warmup_steps)))
    best = {name: {kind: min(r[kind] for r in runs) if runs[0][kind] else None for kind in runs[0]}
            for name, runs in rounds.items()}
    apply_plan(bench.model, plans[requested])
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "modalities": "+".join(modalities), "batch_size": batch_size, "precision": plans[requested].line(),
        "params_total": sum(p.numel() for p in bench.model.parameters()),
        "params_fusion": sum(p.numel() for p in bench.model.fusion.parameters()),
        **speeds(best[requested], batch_size),
        # ru_maxrss is KiB on Linux: the whole process, model and activations included.
        "peak_host_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if requested != "fp32":
        result.update({f"fp32_{key}": value for key, value in speeds(best["fp32"], batch_size).items()})
        result.update({f"speedup_{kind}": round(best["fp32"][kind] / best[requested][kind], 2)
                       for kind in best[requested] if best[requested][kind]})
    result.update(flops_use(bench, best[requested], peak))
    return result


def speeds(seconds: dict[str, float | None], batch_size: int) -> dict:
    return {"train_clips_per_s": round(batch_size / seconds["train"], 2),
            "infer_ms_per_clip": round(1000 * seconds["infer"] / batch_size, 3),
            **({"video_encode_ms_per_clip": round(1000 * seconds["encode"] / batch_size, 3)} if seconds["encode"] else {})}


def flops_use(bench: ModelBench, seconds: dict, peak: dict | None) -> dict:
    """Peak GPU memory and MFU against the GPU's published peak; on a CPU the counted GFLOP/s against ``peak``."""
    from mmbehave.perf.flops import count_flops, peak_flops

    if bench.device.type == "cuda":
        result = {"peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated(bench.device) / 2**20, 1)}
        known = peak_flops(bench.device)
        if known:
            result["mfu"] = round(count_flops(bench.train_step) / seconds["train"] / known, 4)
        return result
    if not peak:
        return {}
    with inference_casts(bench.device):
        infer = count_flops(bench.infer_step)
    return {**utilisation("train", count_flops(bench.train_step) / seconds["train"] / 1e9, peak),
            **utilisation("infer", infer / seconds["infer"] / 1e9, peak)}


def utilisation(step: str, gflop_per_s: float, peak: dict) -> dict:
    """The step's counted GFLOP/s, and its share of this run's fp32 and bf16 matmul peaks."""
    return {f"{step}_gflop_per_s": round(gflop_per_s, 1),
            f"{step}_of_fp32_peak": round(gflop_per_s / peak["fp32_gflop_per_s"], 3),
            f"{step}_of_bf16_peak": round(gflop_per_s / peak["bf16_gflop_per_s"], 3)}
