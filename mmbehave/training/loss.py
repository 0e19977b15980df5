"""The training objective: a weighted sum of the species and behaviour cross-entropies.

``training.loss`` in config targets ``multitask_loss`` (a partial): the config gives the weights and
switches, the run adds what only the data knows (the training labels, for class weighting).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def inverse_frequency_weights(labels: list[int], num_classes: int) -> torch.Tensor:
    """Class weights proportional to 1 / frequency, normalised to mean 1 (unseen classes get weight 1)."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.ones_like(counts))
    return weights / weights.mean()


class MultiTaskLoss(nn.Module):
    """``species_weight * CE(species) + behavior_weight * CE(behavior)``; returns (total, per-head dict)."""

    def __init__(
        self,
        species_weight: float = 1.0,
        behavior_weight: float = 1.0,
        label_smoothing: float = 0.0,
        species_class_weights: torch.Tensor | None = None,
        behavior_class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.species_weight = species_weight
        self.behavior_weight = behavior_weight
        self.label_smoothing = label_smoothing
        # Buffers move with .to(device) and are saved in the state dict.
        self.register_buffer("species_class_weights", species_class_weights, persistent=False)
        self.register_buffer("behavior_class_weights", behavior_class_weights, persistent=False)

    def forward(self, species_logits, behavior_logits, species, behavior) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        species_loss = F.cross_entropy(species_logits.float(), species, weight=self.species_class_weights,
                                       label_smoothing=self.label_smoothing)
        behavior_loss = F.cross_entropy(behavior_logits.float(), behavior, weight=self.behavior_class_weights,
                                        label_smoothing=self.label_smoothing)
        total = self.species_weight * species_loss + self.behavior_weight * behavior_loss
        return total, {"species_loss": species_loss, "behavior_loss": behavior_loss}


def multitask_loss(species_weight: float = 1.0, behavior_weight: float = 1.0, label_smoothing: float = 0.0,
                   class_weighted: bool = False, *, train_species: list[int], train_behaviors: list[int],
                   num_species: int, num_behaviors: int) -> MultiTaskLoss:
    """``MultiTaskLoss`` from the ``training.loss`` config; ``class_weighted`` weights each class by its inverse
    frequency in ``train_species`` / ``train_behaviors`` (class indices of the training clips)."""
    return MultiTaskLoss(
        species_weight, behavior_weight, label_smoothing,
        inverse_frequency_weights(train_species, num_species) if class_weighted else None,
        inverse_frequency_weights(train_behaviors, num_behaviors) if class_weighted else None,
    )
