"""VideoMAE's tube masking: the same patches hidden in every frame of a clip.

    token grid (t, h, w), time slowest (the order VideoMAE's patch embedding flattens in)
      ─► per clip, round(mask_ratio · h·w) of the h·w patch positions drawn at random
      ─► that spatial mask repeated over the t tubelet steps: (B, t·h·w) booleans, True = hidden

Why tubes (Tong et al. 2022, section 3.3): neighbouring frames are near copies, so a patch hidden in one frame
but shown in the next could be copied across instead of inferred; hiding the whole tube forces the encoder to
reason about the scene. Every clip hides the same number of tokens, which VideoMAEForPreTraining needs.
"""

from __future__ import annotations

import torch


def tube_mask(batch: int, grid: tuple[int, int, int], mask_ratio: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, t·h·w) bool, True where a token is hidden; at least one patch hidden and one shown per frame."""
    steps, height, width = grid
    spatial = height * width
    hidden = min(max(int(round(mask_ratio * spatial)), 1), spatial - 1)
    order = torch.rand(batch, spatial, generator=generator).argsort(dim=1)
    plane = torch.zeros(batch, spatial, dtype=torch.bool)
    plane.scatter_(1, order[:, :hidden], True)
    return plane.unsqueeze(1).expand(batch, steps, spatial).reshape(batch, steps * spatial)
