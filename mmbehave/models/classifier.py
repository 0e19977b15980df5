"""The whole model: encoders → fusion → one classification head per ``model.heads`` entry.

    video (B, 3, T, H, W) ──► video_encoder ──► (B, N_v, D_v) ──┐
                                                                ├──► fusion ──► fused (B, hidden)
    audio (B, 1, n_mels, time) ──► audio_encoder ──► (B, N_a, D_a) ┘                │
                                                                   ┌─────────────┴─────────────┐
                                                            heads["species"]   ...   heads["behavior"]
                                                      Dropout, Linear → (B, S)     Dropout, Linear → (B, K)

One fused representation, several heads (by default species and behaviour) predicted jointly (multi-task),
so the evidence that tells a red deer from a roe deer is shared with the one that tells grazing
from alarm calling. Heads output logits; whether they are read with a softmax (single-label) or a sigmoid
(multi-label) is the head's type, which the loss and the metrics apply (``mmbehave.domain.heads``).
Either encoder may be None (ablation, `conf/<group>/none.yaml`); the fusion is then built for the one
remaining modality. Fusion: Nagrani et al., "Attention Bottlenecks for
Multimodal Fusion", NeurIPS 2021 (`mmbehave.models.mbt`), or the late-fusion baseline.
Losses live with the trainer, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from mmbehave.core.precision import part_autocast

MODALITIES = ("video", "audio")  # fixed order: fusion and configs rely on video coming first


@dataclass
class ClassifierOutput:
    """logits {head: (B, classes)}; fused (B, hidden) the representation every head reads; attentions: the
    fusion's attention maps ({modality: per-layer (B, heads, L, L)}) or None."""

    logits: dict[str, torch.Tensor]
    fused: torch.Tensor
    attentions: dict[str, list[torch.Tensor]] | None = None


class MultiModalClassifier(nn.Module):
    """Video and/or audio clip → logits per head.

    video_encoder / audio_encoder: modules mapping their input to tokens (B, N, output_dim), or None
        to leave that modality out. At least one is needed.
    fusion: factory called as `fusion(input_dims={"video": D_v, "audio": D_a})` with the modalities
        present (a Hydra partial of MBTFusion or ConcatFusion); the result has `hidden_dim`.
    num_classes: {head: classes}, from the data, in head order. heads: ``model.heads`` (the config's
        description of each head; its names must be those of num_classes). head_dropout: before each Linear.
    """

    def __init__(
        self,
        video_encoder: nn.Module | None,
        audio_encoder: nn.Module | None,
        fusion: Callable[..., nn.Module],
        num_classes: Mapping[str, int],
        head_dropout: float = 0.1,
        heads: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        if video_encoder is None and audio_encoder is None:
            raise ValueError("video_encoder=none and audio_encoder=none: at least one modality is needed")
        configured = [name for name, spec in (heads or {}).items() if spec is not None]
        if heads is not None and configured != list(num_classes):
            raise ValueError(f"model.heads names {configured}, the class lists {list(num_classes)}")
        self.video_encoder = video_encoder
        self.audio_encoder = audio_encoder
        input_dims = {m: int(encoder.output_dim) for m, encoder in self._encoders().items()}
        self.fusion = fusion(input_dims=input_dims)
        hidden = self.fusion.hidden_dim
        self.heads = nn.ModuleDict({name: nn.Sequential(nn.Dropout(head_dropout), nn.Linear(hidden, int(size)))
                                    for name, size in num_classes.items()})
        # {"video_encoder" / "audio_encoder" / "fusion" / "heads": "fp32" | "bf16"}, set by
        # models.precision_plan.apply_plan; not state, so checkpoints do not depend on where they were made.
        self.part_precision: dict[str, str] = {}

    def _encoders(self) -> dict[str, nn.Module]:
        encoders = {"video": self.video_encoder, "audio": self.audio_encoder}
        return {m: encoders[m] for m in MODALITIES if encoders[m] is not None}

    @property
    def modalities(self) -> str:
        """The modalities this model was built with: "video+audio", "video" or "audio"."""
        return "+".join(self._encoders())

    @property
    def fallbacks(self) -> dict[str, str]:
        """{"video_encoder" / "audio_encoder": reason} for encoders that replaced missing pretrained weights."""
        return {
            f"{m}_encoder": encoder.fallback_reason
            for m, encoder in self._encoders().items()
            if getattr(encoder, "fallback_reason", None)
        }

    def encode(self, video: torch.Tensor | None = None, audio: torch.Tensor | None = None,
               present: dict[str, torch.Tensor] | None = None,
               tokens: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Tokens {modality: (B, N_m, D_m)} for each modality the model has and was given.

        present: {modality: (B,) bool}, False where a sample lacks that modality. Only the samples that have a
        modality go through its encoder: a placeholder (the silence of a clip without audio) must not shift
        BatchNorm statistics or take part in the gradient. Absent samples get zero tokens, which the fusion
        ignores; a modality absent from the whole batch gets one zero token per sample, and no encoder runs.
        tokens: {modality: (B, N_m, D_m)} already encoded (a frozen encoder's cached output), used as they are.
        Inputs for a modality the model was built without are ignored (an ablated run reads the same
        batches as a full one). ValueError if none of the model's modalities was given.
        """
        inputs = {"video": video, "audio": audio}
        present, given = present or {}, tokens or {}
        tokens = {}
        for modality, encoder in self._encoders().items():
            x, mask = inputs[modality], present.get(modality)
            if given.get(modality) is not None:
                tokens[modality] = given[modality]
                continue
            if x is None:
                continue
            if mask is None or bool(mask.all()):
                tokens[modality] = self.run_part(f"{modality}_encoder", encoder, x)
            elif not bool(mask.any()):
                tokens[modality] = x.new_zeros(x.shape[0], 1, int(encoder.output_dim))
            else:
                rows = mask.nonzero().squeeze(1)
                encoded = self.run_part(f"{modality}_encoder", encoder, x.index_select(0, rows))
                zeros = encoded.new_zeros(x.shape[0], *encoded.shape[1:])
                tokens[modality] = zeros.index_copy(0, rows, encoded)
        if not tokens:
            raise ValueError(f"this {self.modalities} model got no input for any of its modalities")
        return tokens

    def run_part(self, part: str, module: nn.Module, *args, **kwargs):
        """``module`` in the precision planned for ``part`` (none planned: the caller's). A part run in bf16
        hands fp32 on, so the next part (fp32, say the heads) gets the dtype its weights have."""
        precision = self.part_precision.get(part)
        if precision is None:
            return module(*args, **kwargs)
        device = next(self.parameters()).device
        with part_autocast(device, precision):
            out = module(*args, **kwargs)
        return out.float() if precision != "fp32" and isinstance(out, torch.Tensor) else out

    def classify_tokens(
        self,
        tokens: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None = None,
        return_attention: bool = False,
    ) -> ClassifierOutput:
        """Fusion and heads over tokens from `encode` (e.g. cached encoder outputs).

        present: {modality: (B,) bool}, False where a sample lacks that modality (default: all present).
        """
        fused = self.run_part("fusion", self.fusion, tokens, present=present, return_attention=return_attention)
        pooled = fused.pooled.float() if self.part_precision else fused.pooled
        return ClassifierOutput(
            logits={name: self.run_part("heads", head, pooled) for name, head in self.heads.items()},
            fused=pooled,
            attentions=fused.attentions if not fused.attentions or not self.part_precision else
            {m: [weights.float() for weights in maps] for m, maps in fused.attentions.items()},
        )

    def forward(
        self,
        video: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
        video_present: torch.Tensor | None = None,
        audio_present: torch.Tensor | None = None,
        return_attention: bool = False,
        video_tokens: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        """video: (B, 3, T, H, W) in [0, 1]; audio: (B, 1, n_mels, time) standardised log-mel.

        Either may be None: that modality is then absent for the whole batch (e.g. `audio=None` on a
        video+audio model runs video only). *_present: (B,) bool, False for samples lacking that
        modality (e.g. a clip without an audio track); default all True. *_tokens: that modality's encoder
        output, given instead of its input (cached features of a frozen encoder).
        """
        flags = {"video": video_present, "audio": audio_present}
        tokens = self.encode(video, audio, present={m: f for m, f in flags.items() if f is not None},
                             tokens={"video": video_tokens, "audio": audio_tokens})
        present = {m: flags[m] for m in tokens if flags[m] is not None}
        return self.classify_tokens(tokens, present or None, return_attention)
