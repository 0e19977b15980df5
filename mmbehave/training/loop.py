"""One training epoch and one evaluation pass.

    batch --to(device)--> model (autocast) --> logits --> MultiTaskLoss --/size of its accumulation group--> backward
          every grad_accum_steps batches (and after the last): unscale -> clip -> optimizer.step -> scheduler.step
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mmbehave.core.precision import autocast
from mmbehave.core.progress import show_progress
from mmbehave.training.class_metrics import single_label_scores
from mmbehave.training.epoch_metrics import LONG_TAIL_PER_EPOCH
from mmbehave.training.metrics import accuracy_and_macro_f1, confusion_matrix
from mmbehave.training.modality_dropout import drop_modalities


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run cannot recover by itself."""


@dataclass(frozen=True)
class StepSettings:
    """How each training step runs (from ``training.*`` and ``hardware.*``)."""

    device: torch.device
    precision: str = "fp32"                 # fp32 | bf16 | fp16 (fp16 needs a GradScaler)
    grad_accum_steps: int = 1               # optimizer step every N batches
    grad_clip_norm: float | None = None     # clip the global gradient norm before each optimizer step
    limit_batches: int | None = None        # stop the epoch after N batches
    modality_dropout: float = 0.0           # chance a clip loses one modality for the step (modality_dropout.py)


def model_inputs(batch: dict, device: torch.device) -> dict:
    """The model's keyword arguments from a collated batch (absent modalities stay absent)."""
    keys = ("video", "audio", "video_tokens", "audio_tokens", "video_present", "audio_present")
    return {k: batch[k].to(device, non_blocking=True) for k in keys if k in batch}


def limited(loader: Iterable, limit: int | None) -> Iterable:
    for index, batch in enumerate(loader):
        if limit is not None and index >= limit:
            return
        yield batch


def train_one_epoch(model: nn.Module, loader, *, loss_fn: nn.Module, optimizer, scheduler, step: StepSettings,
                    epoch: int, scaler=None, on_step: Callable[[], None] | None = None) -> float:
    """One pass over ``loader``; returns the mean training loss over its batches. ``scaler``: the fp16
    GradScaler (None otherwise). ``on_step``: called after every batch (the profiler's clock)."""
    device, accum = step.device, step.grad_accum_steps
    model.train()
    total, count = 0.0, 0
    num_batches = len(loader) if step.limit_batches is None else min(step.limit_batches, len(loader))
    bar = tqdm(limited(loader, step.limit_batches), total=num_batches, desc=f"epoch {epoch + 1} train",
               leave=False, disable=not show_progress())
    optimizer.zero_grad(set_to_none=True)
    for index, batch in enumerate(bar):
        with autocast(device, step.precision):
            output = model(**drop_modalities(model_inputs(batch, device), step.modality_dropout))
        loss, _ = loss_fn(output.species_logits, output.behavior_logits,
                          batch["species"].to(device), batch["behavior"].to(device))
        value = loss.item()  # one host sync per step, for the check and the running mean
        if not math.isfinite(value):
            raise TrainingDiverged(f"loss is {value} at epoch {epoch + 1}, batch {index + 1}: "
                                   "lower optimizer.lr, keep training.grad_clip_norm on, or use hardware.precision=fp32.")
        # Each batch's share of its accumulation group: the epoch's last group may be shorter than accum, and
        # dividing it by accum would make that optimizer step smaller than the others.
        group_start = index - index % accum
        (scaler.scale(loss) if scaler else loss).div(min(accum, num_batches - group_start)).backward()
        last_batch = index + 1 == num_batches
        if (index + 1) % accum == 0 or last_batch:
            if scaler:
                scaler.unscale_(optimizer)
            if step.grad_clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip_norm)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        total += value
        count += 1
        bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        if on_step is not None:
            on_step()
    return total / max(count, 1)


@dataclass
class Evaluation:
    """Metrics plus the raw predictions, for confusion matrices and per-class reports."""

    metrics: dict[str, float]
    species_true: np.ndarray = field(repr=False)
    species_probs: np.ndarray = field(repr=False)
    behavior_true: np.ndarray = field(repr=False)
    behavior_probs: np.ndarray = field(repr=False)
    clip_ids: list[str] = field(repr=False, default_factory=list)


@torch.no_grad()
def evaluate(model: nn.Module, loader, *, loss_fn: nn.Module, device: torch.device, precision: str,
             num_species: int, num_behaviors: int, limit_batches: int | None = None, prefix: str = "val",
             desc: str = "validate", train_counts: dict[str, list[int]] | None = None) -> Evaluation:
    """Loss, accuracy, macro-F1 and the per-epoch long-tail scores per head (epoch_metrics.py names them all),
    and ``<prefix>/macro_f1`` = mean of the two heads' macro-F1. ``train_counts``: {head: training clips per
    class}, which split classes into head and tail; without them the tail score is left out."""
    model.eval()
    losses, clip_ids = [], []
    outputs = {"species_true": [], "species_probs": [], "behavior_true": [], "behavior_probs": []}
    for batch in tqdm(limited(loader, limit_batches), desc=desc, leave=False, disable=not show_progress()):
        with autocast(device, precision):
            output = model(**model_inputs(batch, device))
        loss, _ = loss_fn(output.species_logits, output.behavior_logits,
                          batch["species"].to(device), batch["behavior"].to(device))
        losses.append(loss.item() * len(batch["species"]))
        clip_ids.extend(batch["clip_id"])
        for head in ("species", "behavior"):
            outputs[f"{head}_true"].append(batch[head].numpy())
            logits = getattr(output, f"{head}_logits").float()
            outputs[f"{head}_probs"].append(torch.softmax(logits, dim=-1).cpu().numpy())
    arrays = {k: np.concatenate(v) for k, v in outputs.items()}
    metrics = {f"{prefix}/loss": float(sum(losses) / max(len(clip_ids), 1))}
    for head, num_classes in (("species", num_species), ("behavior", num_behaviors)):
        matrix = confusion_matrix(arrays[f"{head}_true"], arrays[f"{head}_probs"].argmax(axis=1), num_classes)
        accuracy, macro_f1 = accuracy_and_macro_f1(matrix)
        metrics[f"{prefix}/{head}_acc"] = accuracy
        metrics[f"{prefix}/{head}_macro_f1"] = macro_f1
        # A few thousand rows at most: one sort per class for AP, milliseconds next to the forward passes.
        long_tail = single_label_scores(arrays[f"{head}_true"], arrays[f"{head}_probs"],
                                        train_counts[head] if train_counts else None).summary
        metrics.update({f"{prefix}/{head}_{key}": long_tail[key] for key in LONG_TAIL_PER_EPOCH if key in long_tail})
    metrics[f"{prefix}/macro_f1"] = (metrics[f"{prefix}/species_macro_f1"] + metrics[f"{prefix}/behavior_macro_f1"]) / 2
    return Evaluation(metrics=metrics, clip_ids=clip_ids, **arrays)
