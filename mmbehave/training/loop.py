"""One training epoch and one evaluation pass.

    batch --to(device)--> model (autocast) --> logits per head --> HeadsLoss --/size of its accumulation group--> backward
          every grad_accum_steps batches (and after the last): unscale -> clip -> optimizer.step -> scheduler.step
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mmbehave.core.precision import autocast
from mmbehave.core.progress import show_progress
from mmbehave.domain.heads import HeadSpec
from mmbehave.metrics.epoch_scores import head_metrics, probabilities
from mmbehave.training.distributed import ProcessGroup, gather
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


def batch_targets(batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
    return {head: values.to(device, non_blocking=True) for head, values in batch["targets"].items()}


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
        steps_now = (index + 1) % accum == 0 or index + 1 == num_batches
        # Under DDP, gradients are averaged over the processes only on the batch that ends an accumulation group.
        sync = contextlib.nullcontext() if steps_now or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast(device, step.precision):
                output = model(**drop_modalities(model_inputs(batch, device), step.modality_dropout))
            loss, _ = loss_fn(output.logits, batch_targets(batch, device))
            value = loss.item()  # one host sync per step, for the check and the running mean
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss is {value} at epoch {epoch + 1}, batch {index + 1}: lower optimizer.lr, "
                                       "keep training.grad_clip_norm on, or use hardware.precision=fp32.")
            # Each batch's share of its accumulation group: the epoch's last group may be shorter than accum, and
            # dividing it by accum would make that optimizer step smaller than the others.
            group_start = index - index % accum
            (scaler.scale(loss) if scaler else loss).div(min(accum, num_batches - group_start)).backward()
        if steps_now:
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
class Validation:
    """Metrics plus the raw predictions, for per-class reports and the multi-label heads' thresholds."""

    metrics: dict[str, float]
    targets: dict[str, np.ndarray] = field(repr=False)  # {head: (N,) class indices or (N, C) 0/1 rows}
    probs: dict[str, np.ndarray] = field(repr=False)    # {head: (N, C) softmax or sigmoid}


@torch.no_grad()
def validate(model: nn.Module, loader, *, loss_fn: nn.Module, device: torch.device, precision: str,
             heads: Sequence[HeadSpec], limit_batches: int | None = None,
             train_counts: dict[str, list[int]] | None = None, group: ProcessGroup = ProcessGroup()) -> Validation:
    """The validation pass: loss, accuracy, macro-F1 and the per-epoch long-tail scores per head (metric_names.py
    names them all, ``val/<name>``), and ``val/macro_f1`` = mean of the heads' macro-F1. ``train_counts``: {head:
    training clips per class}, which split classes into frequent and rare; without them the rare-class score is left
    out. Under torchrun each process predicts its share of the clips and every process scores them all (``group``)."""
    model.eval()
    losses, clips = [], 0
    targets: dict[str, list] = {head.name: [] for head in heads}
    probs: dict[str, list] = {head.name: [] for head in heads}
    for batch in tqdm(limited(loader, limit_batches), desc="validate", leave=False, disable=not show_progress()):
        with autocast(device, precision):
            output = model(**model_inputs(batch, device))
        loss, _ = loss_fn(output.logits, batch_targets(batch, device))
        losses.append(loss.item() * len(batch["clip_id"]))
        clips += len(batch["clip_id"])
        for head in heads:
            targets[head.name].append(batch["targets"][head.name].numpy())
            probs[head.name].append(probabilities(head, output.logits[head.name]))
    true = {head: np.concatenate(values) for head, values in targets.items()}
    scores = {head: np.concatenate(values) for head, values in probs.items()}
    loss_sum = float(sum(losses))
    if group.active:
        shares = gather((clips, true, scores, loss_sum), group)
        clips = sum(share[0] for share in shares)
        true = {head: np.concatenate([share[1][head] for share in shares]) for head in true}
        scores = {head: np.concatenate([share[2][head] for share in shares]) for head in scores}
        loss_sum = sum(share[3] for share in shares)
    metrics = {"val/loss": loss_sum / max(clips, 1)}
    for head in heads:
        # A few thousand rows at most: one sort per class for AP, milliseconds next to the forward passes.
        values = head_metrics(head, true[head.name], scores[head.name],
                              train_counts[head.name] if train_counts else None)
        metrics.update({f"val/{head.name}_{key}": value for key, value in values.items()})
    metrics["val/macro_f1"] = float(np.mean([metrics[f"val/{head.name}_macro_f1"] for head in heads]))
    return Validation(metrics=metrics, targets=true, probs=scores)
