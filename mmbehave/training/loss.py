"""The training objective: the heads' losses, each weighted by its ``model.heads.<name>.loss_weight``, summed.

    single head: cross-entropy over its classes (optionally class-weighted, label-smoothed)
    multi head:  binary cross-entropy per class, positives weighted by negatives / positives in train

``training.loss`` in config targets ``heads_loss`` (a partial): the config gives the switches, the run adds
what only the data knows (the heads, the training targets for class and positive weights).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmbehave.domain.heads import HeadSpec

# A class seen in a handful of training clips would otherwise weigh hundreds of times a common one: clip the
# positive weight so one rare label cannot dominate the gradient (timm / MMAction2 cap theirs alike).
MAX_POS_WEIGHT = 50.0


def inverse_frequency_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> torch.Tensor:
    """Class weights proportional to 1 / frequency, normalised to mean 1 (unseen classes get weight 1)."""
    counts = torch.bincount(torch.as_tensor(np.asarray(labels), dtype=torch.long), minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.ones_like(counts))
    return weights / weights.mean()


def positive_weights(rows: np.ndarray) -> torch.Tensor:
    """Per class, negatives / positives among the training clips (BCE's pos_weight), within [1, MAX_POS_WEIGHT]
    for rare classes; a class without positives gets 1. Balances each label's rare "yes" against its "no"."""
    rows = np.asarray(rows, dtype=np.float64)
    positives = rows.sum(axis=0)
    negatives = len(rows) - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    return torch.as_tensor(np.clip(weights, 1.0, MAX_POS_WEIGHT), dtype=torch.float32)


class HeadsLoss(nn.Module):
    """``sum(loss_weight * loss(head))`` over the heads; returns (total, {"<head>_loss": value})."""

    def __init__(self, heads: Sequence[HeadSpec], label_smoothing: float = 0.0,
                 class_weights: Mapping[str, torch.Tensor | None] | None = None,
                 pos_weights: Mapping[str, torch.Tensor | None] | None = None) -> None:
        super().__init__()
        self.heads = tuple(heads)
        self.label_smoothing = label_smoothing
        class_weights, pos_weights = class_weights or {}, pos_weights or {}
        for head in self.heads:
            # Buffers move with .to(device); not saved (the data gives them again on resume).
            self.register_buffer(f"weight_{head.name}", class_weights.get(head.name), persistent=False)
            self.register_buffer(f"pos_weight_{head.name}", pos_weights.get(head.name), persistent=False)

    def forward(self, logits: Mapping[str, torch.Tensor],
                targets: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts, total = {}, None
        for head in self.heads:
            scores, target = logits[head.name].float(), targets[head.name]
            if head.multi:
                loss = F.binary_cross_entropy_with_logits(scores, target.float(),
                                                          pos_weight=getattr(self, f"pos_weight_{head.name}"))
            else:
                loss = F.cross_entropy(scores, target, weight=getattr(self, f"weight_{head.name}"),
                                       label_smoothing=self.label_smoothing)
            parts[f"{head.name}_loss"] = loss
            total = head.loss_weight * loss if total is None else total + head.loss_weight * loss
        return total, parts


def heads_loss(label_smoothing: float = 0.0, class_weighted: bool = False, positive_weighted: bool = True, *,
               heads: Sequence[HeadSpec], train_targets: Mapping[str, np.ndarray],
               num_classes: Mapping[str, int]) -> HeadsLoss:
    """``HeadsLoss`` from the ``training.loss`` config. ``class_weighted``: single heads weight each class by its
    inverse frequency in ``train_targets``; ``positive_weighted``: multi heads weight each class's positives by
    its negatives / positives ratio (``positive_weights``)."""
    class_weights = {h.name: inverse_frequency_weights(train_targets[h.name], num_classes[h.name])
                     for h in heads if class_weighted and not h.multi}
    pos_weights = {h.name: positive_weights(train_targets[h.name]) for h in heads if positive_weighted and h.multi}
    return HeadsLoss(heads, label_smoothing, class_weights, pos_weights)
