"""Late-fusion baseline: pool each modality, concatenate, MLP. The yardstick MBT has to beat.

    video tokens (B, N_v, D_v)          audio tokens (B, N_a, D_a)
      │ mean over tokens                  │ mean over tokens
      │ LayerNorm, Linear → hidden        │ LayerNorm, Linear → hidden
      │ zeros where the sample lacks it   │ zeros where the sample lacks it
      └──────────── concatenate (B, M·hidden) ────┘
                          ▼
          num_layers × (Linear → GELU → Dropout), width hidden
                          ▼
                 pooled (B, hidden_dim)

"Late fusion" in the sense of Nagrani et al., "Attention Bottlenecks for Multimodal Fusion",
NeurIPS 2021 (their baseline): modalities meet only after each is summarised. The absent
modality's slot is zeroed after its projection, so "absent" is one fixed input the MLP learns,
whatever the missing modality's placeholder tokens held.
"""

from __future__ import annotations

import torch
from torch import nn

from mmbehave.models.mbt import FusionOutput, check_token_inputs, present_masks


class ConcatFusion(nn.Module):
    """Mean-pool, project, concatenate, MLP.

    input_dims: token width per modality, e.g. {"video": 768, "audio": 512} (order = concat order).
    hidden_dim: width of each projection and of the output. dropout: after each MLP layer.
    num_layers: Linear-GELU-Dropout layers after the concatenation (≥ 1).
    """

    def __init__(self, input_dims: dict[str, int], hidden_dim: int = 128, dropout: float = 0.1, num_layers: int = 2):
        super().__init__()
        if not input_dims:
            raise ValueError("ConcatFusion needs input_dims for at least one modality")
        if num_layers < 1:
            raise ValueError(f"fusion.num_layers must be >= 1 for concat fusion; got {num_layers}")
        self.input_dims = dict(input_dims)
        self.hidden_dim = hidden_dim
        self.project = nn.ModuleDict(
            {m: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden_dim)) for m, d in self.input_dims.items()}
        )
        layers: list[nn.Module] = []
        width = hidden_dim * len(self.input_dims)
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        self.mlp = nn.Sequential(*layers)

    def forward(
        self,
        tokens: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None = None,
        return_attention: bool = False,
    ) -> FusionOutput:
        """tokens: {modality: (B, N_m, D_m)}, any non-empty subset of input_dims (a modality left out
        counts as absent for every sample). present: {modality: (B,) bool}, default all present.
        Returns FusionOutput(pooled (B, hidden_dim), attentions=None): there is no attention here.
        """
        check_token_inputs(tokens, self.input_dims)
        masks = present_masks(tokens, present)
        reference = next(iter(tokens.values()))
        slots = []
        for modality in self.input_dims:
            if modality not in tokens:
                slots.append(reference.new_zeros(reference.shape[0], self.hidden_dim))
                continue
            summary = self.project[modality](tokens[modality].mean(dim=1))  # (B, hidden)
            slots.append(torch.where(masks[modality][:, None], summary, torch.zeros_like(summary)))
        return FusionOutput(pooled=self.mlp(torch.cat(slots, dim=1)), attentions=None)
