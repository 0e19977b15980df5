"""The student's objective: the labels' loss and the teacher's soft targets, mixed per head.

    per head:  (1 - alpha) * labels' loss (HeadsLoss: CE or BCE, labelled clips only)
             +      alpha  * T² * soft loss to the teacher at temperature T
    single head: KL(softmax(teacher / T) ‖ softmax(student / T))            (Hinton et al. 2015)
    multi head:  BCE(sigmoid(student / T), sigmoid(teacher / T)) per label  (each label a two-class softmax)

T² keeps the soft term's gradients the size of the hard term's whatever T is, so alpha means the same at every
temperature. A clip only the teacher labelled (``distill.unlabeled``) contributes the soft term alone. Batches
without the teacher's logits (validation) get the labels' loss alone, so ``val/loss`` compares with ``train``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmbehave.domain.heads import HeadSpec
from mmbehave.training.loss import HeadsLoss, heads_loss

TEACHER_KEY = "teacher:{}"   # targets[...] of a batch: the teacher's logits for that head
LABELED_KEY = "labeled"      # targets[...]: 1 for a clip with labels, 0 for one only the teacher labelled


def soft_loss(head: HeadSpec, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """The mean over clips of the student's divergence from the teacher at ``temperature``, scaled by T²."""
    t = temperature
    if head.multi:
        loss = F.binary_cross_entropy_with_logits(student / t, torch.sigmoid(teacher / t))
    else:
        loss = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), log_target=True,
                        reduction="batchmean")
    return loss * t * t


class DistillationLoss(nn.Module):
    """``(total, {"<head>_loss", "<head>_soft_loss", "<head>_hard_loss"})`` like HeadsLoss's."""

    def __init__(self, hard: HeadsLoss, alpha: float, temperature: float) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distill.alpha must be within [0, 1]; got {alpha}")
        if temperature <= 0:
            raise ValueError(f"distill.temperature must be > 0; got {temperature}")
        self.hard, self.alpha, self.temperature = hard, float(alpha), float(temperature)

    def forward(self, logits: Mapping[str, torch.Tensor],
                targets: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if TEACHER_KEY.format(self.hard.heads[0].name) not in targets:  # validation: the labels alone
            return self.hard(logits, targets)
        labeled = targets[LABELED_KEY].bool()
        parts, total = {}, None
        hard_parts = (self.hard({h: v[labeled] for h, v in logits.items()},
                                {h.name: targets[h.name][labeled] for h in self.hard.heads})[1]
                      if bool(labeled.any()) else {})
        # The labelled clips' share of the batch weighs their hard loss, so a batch mostly of unlabelled clips
        # is not steered by its two labelled ones as much as a batch of labelled clips is.
        share = labeled.float().mean()
        for head in self.hard.heads:
            soft = soft_loss(head, logits[head.name].float(), targets[TEACHER_KEY.format(head.name)].float(),
                             self.temperature)
            hard = hard_parts.get(f"{head.name}_loss")
            loss = self.alpha * soft + ((1 - self.alpha) * share * hard if hard is not None else 0.0)
            parts.update({f"{head.name}_loss": loss, f"{head.name}_soft_loss": soft})
            if hard is not None:
                parts[f"{head.name}_hard_loss"] = hard
            total = head.loss_weight * loss if total is None else total + head.loss_weight * loss
        return total, parts


def distillation_loss(alpha: float = 0.5, temperature: float = 4.0, label_smoothing: float = 0.0,
                      class_weighted: bool = False, positive_weighted: bool = True, *, heads: Sequence[HeadSpec],
                      train_targets: Mapping[str, np.ndarray], num_classes: Mapping[str, int]) -> DistillationLoss:
    """``DistillationLoss`` from ``training.loss`` of conf/distill.yaml; the labels' part is train's own loss."""
    hard = heads_loss(label_smoothing, class_weighted, positive_weighted, heads=heads, train_targets=train_targets,
                      num_classes=num_classes)
    return DistillationLoss(hard, alpha, temperature)
