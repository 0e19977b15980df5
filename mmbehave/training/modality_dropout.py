"""Modality dropout: during training, hide one modality of some clips so that the model learns to cope without it.

    batch inputs {video, audio, audio_present}
      │ each clip, with probability p: drop one of its modalities, video or audio with equal chance
      │ (never both, and never video when the clip has no audio track: it would be left with nothing)
      ▼
    {video, audio, video_present, audio_present}   the present-masks the classifier already understands

The dropped modality is removed the way a missing one is at inference (its present flag is False, so MBT
leaves it out of the bottleneck average and the pooled CLS), so a model trained with p > 0 is scored fairly
by the modality-contribution analysis (``mmbehave.analysis.modality_contributions``) and degrades gracefully
on clips whose microphone failed. Neverova et al., "ModDrop: adaptive multi-modal gesture recognition",
TPAMI 2016. Config: ``training.modality_dropout`` (0 = off).
"""

from __future__ import annotations

import torch


def drop_modalities(inputs: dict[str, torch.Tensor], probability: float,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """A copy of ``inputs`` with ``video_present`` / ``audio_present`` (B,) masks that hide one modality of
    each clip with ``probability``. Inputs without both modalities come back unchanged (nothing to drop)."""
    available = {m: inputs.get(m, inputs.get(f"{m}_tokens")) for m in ("video", "audio")}  # raw or cached
    if probability <= 0 or any(x is None for x in available.values()):
        return inputs
    device, batch = available["video"].device, available["video"].shape[0]
    ones = torch.ones(batch, dtype=torch.bool, device=device)
    audio_present = inputs.get("audio_present", ones).to(device=device, dtype=torch.bool)
    video_present = inputs.get("video_present", ones).to(device=device, dtype=torch.bool)
    dropped = torch.rand(batch, generator=generator).to(device) < probability
    pick_video = torch.rand(batch, generator=generator).to(device) < 0.5
    drop_video = dropped & pick_video & audio_present      # keep video when it is all the clip has
    drop_audio = dropped & ~drop_video & video_present
    return {**inputs, "video_present": video_present & ~drop_video, "audio_present": audio_present & ~drop_audio}
