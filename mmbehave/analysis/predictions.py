"""Run a trained model over a split: class probabilities per head, with all modalities and with each one removed.

    batch ─► model.encode ─► tokens {video, audio} ─┬─► classify_tokens(both)        ─► probs["all"]
                (once per batch)                    ├─► classify_tokens(audio only)  ─► probs["without_video"]
                                                    └─► classify_tokens(video only)  ─► probs["without_audio"]

Removing a modality uses the model's own missing-modality path (a modality left out of the tokens is
absent for every sample, exactly as ``model(video=None, ...)``), so the encoders run once per batch whatever
the number of variants. A clip that has no audio track keeps ``audio_present=False`` in every variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mmbehave.core.precision import inference_casts
from mmbehave.domain.heads import HeadSpec
from mmbehave.metrics.epoch_scores import probabilities

FULL = "all"


def modality_variants(modalities: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """{variant name: modalities kept}: "all", plus "without_<m>" for each modality when there are two."""
    variants = {FULL: tuple(modalities)}
    if len(modalities) > 1:
        for removed in modalities:
            variants[f"without_{removed}"] = tuple(m for m in modalities if m != removed)
    return variants


@dataclass
class SplitPredictions:
    """clip_ids (N); targets {head: (N,) class index, or (N, C) 0/1 for a multi head}; probs {variant: {head:
    (N, classes) softmax, or sigmoid for a multi head}}; heads: the model's, in order."""

    heads: tuple[HeadSpec, ...]
    clip_ids: list[str]
    targets: dict[str, np.ndarray]
    probs: dict[str, dict[str, np.ndarray]]
    present: dict[str, np.ndarray] = field(default_factory=dict)  # {modality: (N,) bool}: the clip has it

    def subset(self, rows: np.ndarray) -> SplitPredictions:
        """The same predictions for the clips selected by the (N,) bool mask ``rows``."""
        return SplitPredictions(
            clip_ids=[c for c, keep in zip(self.clip_ids, rows) if keep],
            targets={head: values[rows] for head, values in self.targets.items()},
            probs={v: {head: values[rows] for head, values in heads.items()} for v, heads in self.probs.items()},
            present={m: flags[rows] for m, flags in self.present.items()},
            heads=self.heads,
        )

    def predicted(self, head: str, variant: str = FULL, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
        """(N,) class indices of a single head; (N, C) bool, probability >= threshold, of a multi head."""
        probs = self.probs[variant][head]
        return probs >= thresholds if self.head(head).multi else probs.argmax(axis=1)

    def head(self, name: str) -> HeadSpec:
        return next(head for head in self.heads if head.name == name)


def encoder_inputs_and_presence(batch: dict, device: torch.device
                                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(encoder inputs {video, audio}, presence flags {modality: (B,) bool}) from a collated batch."""
    inputs = {m: batch[m].to(device) for m in ("video", "audio") if m in batch}
    present = {m: batch[f"{m}_present"].to(device) for m in ("video", "audio") if f"{m}_present" in batch}
    return inputs, present


def predict_split(model: nn.Module, loader, *, heads: Sequence[HeadSpec], device: str | torch.device = "cpu",
                  with_variants: bool = True, progress: bool = False, desc: str = "evaluate") -> SplitPredictions:
    """Probabilities for every clip of ``loader`` (batches from ``mmbehave.data.dataset.collate``)."""
    with torch.no_grad(), inference_casts(torch.device(device)):
        return _predict_split(model, loader, heads=heads, device=device, with_variants=with_variants,
                              progress=progress, desc=desc)


def _predict_split(model: nn.Module, loader, *, heads: Sequence[HeadSpec], device: str | torch.device,
                   with_variants: bool, progress: bool, desc: str) -> SplitPredictions:
    device = torch.device(device)
    model.eval()
    variants = modality_variants(tuple(model.modalities.split("+")))
    if not with_variants:
        variants = {FULL: variants[FULL]}
    clip_ids: list[str] = []
    targets: dict[str, list] = {head.name: [] for head in heads}
    probs: dict[str, dict[str, list]] = {v: {head.name: [] for head in heads} for v in variants}
    flags: dict[str, list] = {"video": [], "audio": []}
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        inputs, present = encoder_inputs_and_presence(batch, device)
        tokens = model.encode(**inputs, present=present)
        for variant, kept in variants.items():
            kept_tokens = {m: tokens[m] for m in kept if m in tokens}
            kept_present = {m: flags for m, flags in present.items() if m in kept_tokens} or None
            output = model.classify_tokens(kept_tokens, kept_present)
            for head in heads:
                probs[variant][head.name].append(probabilities(head, output.logits[head.name]))
        clip_ids.extend(batch["clip_id"])
        for head in heads:
            targets[head.name].append(batch["targets"][head.name].numpy())
        for modality in flags:
            if f"{modality}_present" in batch:
                flags[modality].append(batch[f"{modality}_present"].numpy())
    return SplitPredictions(
        clip_ids=clip_ids,
        targets={head: np.concatenate(values) for head, values in targets.items()},
        probs={v: {head: np.concatenate(values) for head, values in heads.items()} for v, heads in probs.items()},
        present={m: np.concatenate(values) for m, values in flags.items() if values},
        heads=tuple(heads),
    )
