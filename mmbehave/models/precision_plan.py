"""``hardware.precision=auto`` (``precision=auto`` for evaluate and predict): which part of a model runs in bf16
and which in fp32, and why.

    CPU with bf16 matrix units (AMX-BF16, AVX512-BF16; core.cpu_features) ─► each encoder and the fusion:
        bf16 when one clip costs it at least ``min_gflop`` GFLOP (counted, torch.utils.flop_counter), else fp32
    CPU without them ─► fp32 everywhere, as before ``auto`` existed
    CUDA ─► bf16 for every part where the GPU supports it, else fp32
    the heads ─► always fp32: they make the answers, and cost nothing

Why a FLOP count and not a timing: the count is the same on every run, so the same command always makes the
same choice (a resumed run, a seed compared with another). The threshold comes from measuring each part on an
AMX Xeon (docs/benchmarks.md, "Precision"): VideoMAE-Base's encoder (270 GFLOP a clip at 16x224²) runs 4.1x
faster in bf16 and the fusion over its 1,568 tokens (14.5 GFLOP) 3.4x, while the default tiny model's parts
(0.02-0.26 GFLOP) gain 0.8-1.3x, within noise, where casting costs as much as it saves.

``fp32``, ``bf16`` and ``fp16`` ask for one precision everywhere (fp16: CUDA only) and are planned as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from mmbehave.core.cpu_features import bf16_matrix_units

BF16_MIN_GFLOP = 1.0          # per clip and part; hardware.bf16_min_gflop overrides it
COMPUTED_PARTS = ("video_encoder", "audio_encoder", "fusion")
HEADS = "heads"


@dataclass(frozen=True)
class PrecisionPlan:
    requested: str                         # auto | fp32 | bf16 | fp16
    parts: dict[str, str]                  # {part: fp32 | bf16 | fp16}
    reasons: dict[str, str] = field(default_factory=dict)  # {part: why}
    hardware: str = ""                     # what the choice rests on: the CPU's units, the GPU

    @property
    def uses_bf16(self) -> bool:
        return "bf16" in self.parts.values()

    def line(self) -> str:
        """One log line: ``precision=auto: video_encoder bf16 (270.1 GFLOP a clip), ...; <hardware>``."""
        parts = ", ".join(f"{part} {value}" + (f" ({self.reasons[part]})" if part in self.reasons else "")
                          for part, value in self.parts.items())
        return f"precision={self.requested}: {parts}" + (f"; {self.hardware}" if self.hardware else "")

    def params(self) -> dict[str, str]:
        """MLflow params: ``precision/<part>`` per part, ``precision/hardware``."""
        return {**{f"precision/{part}": value for part, value in self.parts.items()},
                **({"precision/hardware": self.hardware[:500]} if self.hardware else {})}

    def as_dict(self) -> dict:
        return {"requested": self.requested, "parts": dict(self.parts), "reasons": dict(self.reasons),
                "hardware": self.hardware}


def model_parts(model: nn.Module) -> list[str]:
    """The parts of a MultiModalClassifier, in the order a clip goes through them."""
    present = [f"{m}_encoder" for m in ("video", "audio") if getattr(model, f"{m}_encoder", None) is not None]
    return [*present, "fusion", HEADS]


def example_inputs(preprocess, modalities) -> dict[str, torch.Tensor]:
    """One clip of zeros in the shapes ``preprocess`` (PreprocessSettings) gives: what the FLOPs are counted on."""
    inputs = {}
    if "video" in modalities:
        inputs["video"] = torch.zeros(1, 3, preprocess.num_frames, preprocess.image_size, preprocess.image_size)
    if "audio" in modalities:
        frames = 1 + int(preprocess.sample_rate * preprocess.clip_seconds) // int(preprocess.hop_length)
        inputs["audio"] = torch.zeros(1, 1, preprocess.n_mels, frames)
    return inputs


@torch.no_grad()
def part_gflop(model: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, float]:
    """GFLOP one clip costs each encoder and the fusion (one eval forward pass, counted, in bf16 to be quick)."""
    from torch.utils.flop_counter import FlopCounterMode

    encoders = {modality: getattr(model, f"{modality}_encoder", None) for modality in inputs}
    costs, tokens = encoder_gflop({m: e for m, e in encoders.items() if e is not None}, inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.autocast(device_type=next(model.parameters()).device.type, dtype=torch.bfloat16):
            with FlopCounterMode(display=False) as counter:
                model.fusion(tokens)
    finally:
        model.train(was_training)
    return {**costs, "fusion": counter.get_total_flops() / 1e9}


@torch.no_grad()
def encoder_gflop(encoders: dict[str, nn.Module], inputs: dict[str, torch.Tensor]
                  ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """({"<modality>_encoder": GFLOP a clip}, {modality: its tokens}) for each encoder of ``encoders``."""
    from torch.utils.flop_counter import FlopCounterMode

    costs, tokens = {}, {}
    for modality, encoder in encoders.items():
        device = next(encoder.parameters()).device
        was_training = encoder.training
        encoder.eval()
        try:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16), \
                    FlopCounterMode(display=False) as counter:
                tokens[modality] = encoder(inputs[modality].to(device)).float()
        finally:
            encoder.train(was_training)
        costs[f"{modality}_encoder"] = counter.get_total_flops() / 1e9
    return costs, tokens


def plan_precision(model: nn.Module, requested: str, device: torch.device, inputs: dict[str, torch.Tensor],
                   min_gflop: float = BF16_MIN_GFLOP) -> PrecisionPlan:
    return plan_parts(model_parts(model), requested, device, lambda: part_gflop(model, inputs), min_gflop)


def plan_parts(parts: list[str], requested: str, device: torch.device, costs_of: Callable[[], dict[str, float]],
               min_gflop: float = BF16_MIN_GFLOP) -> PrecisionPlan:
    """The plan for ``parts`` (``costs_of``: their GFLOP a clip, counted only where the choice needs it). Also what
    pretraining plans its encoders by, which have no fusion or heads."""
    if requested != "auto":
        return PrecisionPlan(requested, {part: requested for part in parts})
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        chosen = "bf16" if supported else "fp32"
        return PrecisionPlan("auto", {part: "fp32" if part == HEADS else chosen for part in parts},
                             {HEADS: "the answers"} if HEADS in parts else {},
                             f"{torch.cuda.get_device_name(device)} {'supports' if supported else 'lacks'} bf16")
    units = bf16_matrix_units()
    if not units.present:
        return PrecisionPlan("auto", {part: "fp32" for part in parts}, {}, f"this CPU {units}")
    costs = costs_of()
    chosen, reasons = {}, {}
    for part in parts:
        if part == HEADS:
            chosen[part], reasons[part] = "fp32", "the answers"
            continue
        cost = costs.get(part, 0.0)
        chosen[part] = "bf16" if cost >= min_gflop else "fp32"
        reasons[part] = f"{cost:.3g} GFLOP a clip {'>=' if cost >= min_gflop else '<'} {min_gflop:g}"
    return PrecisionPlan("auto", chosen, reasons, f"this CPU {units}")


def plan_and_apply(model: nn.Module, requested: str, device: torch.device, preprocess, modalities,
                   min_gflop: float = BF16_MIN_GFLOP) -> PrecisionPlan:
    """What every command does: plan ``requested`` for one clip of ``preprocess``'s shapes, then run by it."""
    return apply_plan(model, plan_precision(model, requested, device, example_inputs(preprocess, modalities),
                                            min_gflop))


def apply_plan(model: nn.Module, plan: PrecisionPlan) -> PrecisionPlan:
    """The model runs each part in its planned precision from now on (``MultiModalClassifier.run_part``)."""
    model.part_precision = dict(plan.parts)
    return plan
