"""The two objectives, and the model that carries them.

    video (B, 3, T, H, W) ─ normalise ─► VideoMAEForPreTraining around the encoder's own backbone:
        tube mask (masking.py) ─► the encoder sees the ~10% of tubes shown ─► a small decoder rebuilds the hidden
        ones ─► mean squared error on their per-patch-normalised pixels                       = masked loss
    the encoder's visible tokens, averaged ─► projection ┐
    audio (B, 1, n_mels, time) ─► audio encoder, averaged ─► projection ┘─► InfoNCE over the batch = contrastive loss
    loss = masked + pretrain.contrastive_weight · contrastive

The contrastive half is CAV-MAE's (Gong et al., ICLR 2023): a clip's picture and its own sound are a positive
pair, every other clip of the batch a negative, both ways round; like CAV-MAE it reads the masked pass's tokens,
so the pair costs no second video pass. Clips without video take no part in either loss (nothing to rebuild or to
pair); clips without audio only in the masked one. The projections and the decoder are thrown away after: only
the encoders are kept (outputs.py).

The targets are per-patch normalised (``pretrain.norm_pix_loss``, the paper's choice): each patch's pixels minus
their mean over their std, per colour channel, so any per-channel normalisation before the encoder (ImageNet's,
a checkpoint's, ``input_norm=clip``) gives the same targets.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import VideoMAEForPreTraining

from mmbehave.core.errors import ConfigError
from mmbehave.core.precision import part_autocast
from mmbehave.models.video_encoders import VideoMAEEncoder
from mmbehave.pretraining.masking import tube_mask
from mmbehave.pretraining.settings import DecoderSettings


@dataclass
class Losses:
    total: torch.Tensor
    masked: float
    contrastive: float | None        # None: no batch with two clips that have both picture and sound
    retrieval: float | None          # share of clips whose own sound is their nearest (top-1 audio ↔ video)


def decoder_config(encoder: VideoMAEEncoder, decoder: DecoderSettings, norm_pix_loss: bool):
    """The encoder's VideoMAE config with the decoder's sizes (defaults: see DecoderSettings)."""
    config = copy.deepcopy(encoder.backbone.config)
    width = decoder.hidden_size or min(config.hidden_size, 384)
    heads = decoder.num_heads or (config.num_attention_heads if width % config.num_attention_heads == 0 else 1)
    if width % heads:
        raise ConfigError(f"pretrain.decoder.hidden_size={width} is not divisible by pretrain.decoder.num_heads={heads}.")
    config.decoder_hidden_size, config.decoder_num_hidden_layers = width, decoder.num_layers
    config.decoder_num_attention_heads, config.decoder_intermediate_size = heads, 4 * width
    config.norm_pix_loss = norm_pix_loss
    return config


class PretrainingModel(nn.Module):
    """The encoders being pretrained, the masked-video decoder and (with both modalities) the two projections."""

    def __init__(self, video_encoder: nn.Module, audio_encoder: nn.Module | None, *, decoder: DecoderSettings,
                 norm_pix_loss: bool, projection_dim: int, contrastive: bool):
        super().__init__()
        if not isinstance(video_encoder, VideoMAEEncoder):
            raise ConfigError(f"video_encoder is a {type(video_encoder).__name__}: the masked objective needs a VideoMAE "
                              "(video_encoder=videomae_tiny | videomae_base); a cnn3d has no patches to hide.")
        self.video_encoder, self.audio_encoder = video_encoder, audio_encoder
        self.masked_video = VideoMAEForPreTraining(decoder_config(video_encoder, decoder, norm_pix_loss))
        self.masked_video.videomae = video_encoder.backbone  # the same module: what the decoder trains is the encoder
        self.contrastive = contrastive and audio_encoder is not None
        if self.contrastive:
            self.video_projection = nn.Sequential(nn.LayerNorm(video_encoder.output_dim),
                                                  nn.Linear(video_encoder.output_dim, projection_dim))
            self.audio_projection = nn.Sequential(nn.LayerNorm(audio_encoder.output_dim),
                                                  nn.Linear(audio_encoder.output_dim, projection_dim))
        self._visible: torch.Tensor | None = None
        video_encoder.backbone.register_forward_hook(self._keep_visible_tokens)

    def _keep_visible_tokens(self, module, inputs, output) -> None:
        self._visible = output[0]  # (B, shown tokens, width): what the contrastive half averages

    def encoders(self) -> dict[str, nn.Module]:
        return {"video": self.video_encoder, **({"audio": self.audio_encoder} if self.audio_encoder is not None else {})}

    def forward(self, batch: dict, *, mask_ratio: float, temperature: float, contrastive_weight: float,
                precision: dict[str, str], generator: torch.Generator | None = None) -> Losses:
        video, device = batch["video"], batch["video"].device
        shown = batch["video_present"].to(device)
        if not bool(shown.any()):
            raise ValueError("a batch without any clip that has video reached the masked objective")
        encoder = self.video_encoder
        if "position_table" in encoder._buffers:  # positions resized from a checkpoint's grid (video_encoders.py)
            encoder.backbone.embeddings.position_embeddings = encoder.position_table
        pixels = encoder.normalize(video[shown]).permute(0, 2, 1, 3, 4)  # (B', T, 3, H, W), as VideoMAE expects
        mask = tube_mask(len(pixels), encoder.grid, mask_ratio, generator).to(device)
        with part_autocast(device, precision.get("video_encoder")):
            masked = self.masked_video(pixel_values=pixels, bool_masked_pos=mask).loss.float()
        total, contrastive, retrieval = masked, None, None
        if self.contrastive:
            paired = batch["audio_present"].to(device)[shown]
            if int(paired.sum()) >= 2:
                video_embedding = self.video_projection(self._visible[paired].float().mean(dim=1))
                with part_autocast(device, precision.get("audio_encoder")):
                    audio_tokens = self.audio_encoder(batch["audio"][shown][paired])
                audio_embedding = self.audio_projection(audio_tokens.float().mean(dim=1))
                loss, retrieval = info_nce(video_embedding, audio_embedding, temperature)
                total, contrastive = masked + contrastive_weight * loss, float(loss.detach())
        self._visible = None
        return Losses(total, float(masked.detach()), contrastive, retrieval)


def info_nce(video: torch.Tensor, audio: torch.Tensor, temperature: float) -> tuple[torch.Tensor, float]:
    """(the symmetric InfoNCE loss, top-1 retrieval accuracy) of B paired embeddings: clip i's picture and sound
    are the positive pair, the other B - 1 clips' the negatives (Oord et al. 2018; CAV-MAE's contrastive half)."""
    video, audio = F.normalize(video, dim=-1), F.normalize(audio, dim=-1)
    logits = video @ audio.T / temperature
    targets = torch.arange(len(video), device=video.device)
    loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    with torch.no_grad():
        hits = (logits.argmax(dim=1) == targets).float().mean() + (logits.argmax(dim=0) == targets).float().mean()
    return loss, float(hits) / 2
