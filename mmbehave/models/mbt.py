"""MBT: audio-visual fusion through a few shared bottleneck tokens.

Nagrani et al., "Attention Bottlenecks for Multimodal Fusion", NeurIPS 2021
(reference: google-research/scenic, projects/mbt/model.py). Fields follow the paper: L = num_layers,
L_f = fusion_layer, B = num_bottlenecks.

    video tokens (B, N_v, D_v)                  audio tokens (B, N_a, D_a)
      │ Linear → hidden, + learned positions      │ Linear → hidden, + learned positions
      ▼                                           ▼
    [CLS_v; video]                              [CLS_a; audio]           z⁰: B learned bottleneck tokens
      │   layers 1 .. L_f: each modality alone (unimodal)
      │   layers L_f+1 .. L:                      │
      │   [CLS_v; video; zˡ⁻¹] ─► video block     │   [CLS_a; audio; zˡ⁻¹] ─► audio block
      │            └──── z_v ────┐                │            └──── z_a ────┐
      │                          ▼                ▼                          ▼
      │                 zˡ = mean of z_v, z_a over the modalities present in each sample
      ▼                                           ▼
    LayerNorm(CLS_v)                            LayerNorm(CLS_a)
      └──────────── mean over present modalities ─────────────┘
                                   ▼
                          pooled (B, hidden_dim)

Each modality has its own pre-LN transformer block per layer and never attends to the other's
tokens: all cross-modal information squeezes through the B bottleneck tokens, which is what makes
fusion cheap and forces each modality to pass on only what the other lacks.

What audio writes into the bottlenecks in layer l is read by video in layer l + 1, so the exchange needs
two fusion layers: L - L_f >= 2 (as in scenic, where the last layer's bottleneck update reaches nothing).
``check_mbt_exchange`` refuses a setting with less, so that no value means "no fusion" silently; B = 0 is the
explicit way to ask for none (late fusion of the CLS tokens). Each encoder hands over normalised tokens (for
VideoMAE see ``mmbehave.models.video_encoders``), so that neither modality drowns the other.

With one modality the bottlenecks exchange nothing and the model is a plain transformer over that modality
(its sequence still carries the B learned tokens, as registers). This makes "modality missing for one
sample" (`present[m][b] = False`) and "modality missing from the batch" the same computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmbehave.domain.config_checks import check_mbt_exchange


@dataclass
class FusionOutput:
    """What a fusion module returns.

    pooled: (B, hidden_dim) fused clip representation the heads classify.
    attentions: per modality, one (B, heads, L, L) attention map per layer; None unless requested
        (and always None for fusions without attention).
    """

    pooled: torch.Tensor
    attentions: dict[str, list[torch.Tensor]] | None = None


def present_masks(
    tokens: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """A (B,) bool mask per modality in `tokens` (True = sample has it); missing entries mean all True."""
    masks = {}
    for modality, x in tokens.items():
        mask = None if present is None else present.get(modality)
        if mask is None:
            masks[modality] = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            continue
        if mask.shape != (x.shape[0],):
            raise ValueError(
                f"present['{modality}'] must have shape ({x.shape[0]},) (one flag per sample); "
                f"got {tuple(mask.shape)}"
            )
        masks[modality] = mask.to(device=x.device, dtype=torch.bool)
    return masks


def masked_mean(values: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
    """Mean of same-shaped (B, ...) tensors, per sample over those whose (B,) mask is True.

    Samples with no True mask get zeros. `torch.where` rather than multiplying by the mask, so a
    NaN in an absent modality's output cannot leak in.
    """
    stacked = torch.stack(values)  # (M, B, ...)
    mask = torch.stack(masks).view(*stacked.shape[:2], *([1] * (stacked.dim() - 2)))
    total = torch.where(mask, stacked, torch.zeros_like(stacked)).sum(0)
    count = mask.sum(0).clamp(min=1).to(stacked.dtype)
    return total / count


def check_token_inputs(tokens: dict[str, torch.Tensor], input_dims: dict[str, int]) -> None:
    """ValueError unless `tokens` is a non-empty subset of `input_dims`, each (B, N, D_m), one B."""
    if not tokens:
        raise ValueError(f"fusion needs tokens for at least one of {list(input_dims)}; got none")
    batch = None
    for modality, x in tokens.items():
        if modality not in input_dims:
            raise ValueError(f"fusion was built for {list(input_dims)}; got tokens for '{modality}'")
        if x.dim() != 3 or x.shape[-1] != input_dims[modality]:
            raise ValueError(
                f"{modality} tokens must be (B, N, {input_dims[modality]}); got {tuple(x.shape)}"
            )
        if batch is not None and x.shape[0] != batch:
            raise ValueError(f"modalities disagree on batch size: {batch} vs {modality} {x.shape[0]}")
        batch = x.shape[0]


class EncoderBlock(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)), then + MLP(LN(x)). (B, L, dim) → (B, L, dim)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, attention_dropout: float | None = None):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        # Dropout on the attention probabilities (None: ``dropout``). Above 0, torch's CPU attention leaves its fused
        # kernel for one that builds every (L, L) matrix: 5x slower at VideoMAE-base's 1568 tokens (measured).
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=attention_dropout, batch_first=True)
        self.attention_dropout = nn.Dropout(dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        mlp_dim = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)
        )
        for layer in (self.mlp[0], self.mlp[3]):  # xavier as in ViT / scenic; torch's default is tuned for ReLU nets
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the updated sequence and, if `need_weights`, attention (B, heads, L, L)."""
        h = self.attention_norm(x)
        # need_weights=False lets torch use its fused attention kernel.
        h, weights = self.attention(h, h, h, need_weights=need_weights, average_attn_weights=False)
        x = x + self.attention_dropout(h)
        return x + self.mlp(self.mlp_norm(x)), weights


class MBTFusion(nn.Module):
    """Multimodal bottleneck transformer over per-modality token sequences.

    input_dims: token width per modality, e.g. {"video": 768, "audio": 512} (order = modality order).
    hidden_dim: model width D. num_layers: L layers per modality stream. num_heads: attention heads per block.
    fusion_layer: L_f, the first layer that shares bottlenecks (0: every layer; the ones before are unimodal).
    num_bottlenecks: B, bottleneck tokens shared between modalities (0: no exchange, late fusion).
    dropout: on the attention output and in the MLP, and on the attention probabilities unless
    attention_dropout says otherwise (0 keeps torch's fused CPU kernel: several times faster on long sequences).
    mlp_ratio: MLP width / D.
    max_tokens: longest token sequence per modality (size of the learned position table).
    """

    def __init__(
        self,
        input_dims: dict[str, int],
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        num_bottlenecks: int = 4,
        dropout: float = 0.1,
        mlp_ratio: float = 4.0,
        max_tokens: int = 2048,
        fusion_layer: int = 0,
        attention_dropout: float | None = None,
    ):
        super().__init__()
        check_mbt_exchange(num_layers, fusion_layer, num_bottlenecks, len(input_dims))
        if hidden_dim % num_heads != 0:
            raise ValueError(
                f"fusion.hidden_dim={hidden_dim} is not divisible by fusion.num_heads={num_heads}; "
                f"pick a hidden_dim that is a multiple of num_heads"
            )
        if not input_dims:
            raise ValueError("MBTFusion needs input_dims for at least one modality")
        self.input_dims = dict(input_dims)
        self.hidden_dim = hidden_dim
        self.num_bottlenecks = num_bottlenecks
        self.max_tokens = max_tokens
        self.fusion_layer = fusion_layer

        # Tokens arrive normalised by their encoders (ResNet18's last BatchNorm; VideoMAE's final norm, added by
        # the encoder where a mean-pooling checkpoint has none). A second, per-token LayerNorm here was tried: it
        # erases how strongly each audio cell responds against the silence around it (val/macro_f1 0.97 -> 0.84).
        self.project = nn.ModuleDict({m: nn.Linear(d, hidden_dim) for m, d in self.input_dims.items()})
        # BERT-style init (normal, std 0.02) for positions and bottlenecks, as scenic; CLS starts at zero.
        self.position_embedding = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(1, max_tokens, hidden_dim) * 0.02) for m in self.input_dims}
        )
        self.cls_token = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, hidden_dim)) for m in self.input_dims})
        # One set of initial bottlenecks z⁰ for all modalities: they are shared by definition.
        self.bottleneck = nn.Parameter(torch.randn(1, num_bottlenecks, hidden_dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleDict({m: EncoderBlock(hidden_dim, num_heads, mlp_ratio, dropout, attention_dropout)
                           for m in self.input_dims})
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(hidden_dim)  # one norm over all CLS tokens, as scenic's encoder_norm

    def _embed(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D_m) → [CLS; tokens + positions] (B, 1 + N, hidden_dim)."""
        if x.shape[1] > self.max_tokens:
            raise ValueError(
                f"{modality} has {x.shape[1]} tokens but fusion.max_tokens={self.max_tokens}; "
                f"raise fusion.max_tokens or feed fewer frames / smaller inputs"
            )
        h = self.project[modality](x) + self.position_embedding[modality][:, : x.shape[1]]
        return torch.cat([self.cls_token[modality].expand(x.shape[0], -1, -1), h], dim=1)

    def modality_cls(
        self,
        tokens: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None = None,
        return_attention: bool = False,
    ) -> tuple[dict[str, torch.Tensor], dict[str, list[torch.Tensor]] | None]:
        """Per-modality final-normed CLS (B, hidden_dim) each, and the attentions if requested.

        The pre-pooling view of `forward`: shows what each modality's stream knows, e.g. whether
        audio reached the video CLS through the bottlenecks.
        """
        check_token_inputs(tokens, self.input_dims)
        masks = present_masks(tokens, present)
        modalities = [m for m in self.input_dims if m in tokens]  # fixed order: video, then audio
        sequences = {m: self._embed(m, tokens[m]) for m in modalities}
        batch = next(iter(sequences.values())).shape[0]
        z = self.bottleneck.expand(batch, -1, -1)
        b = self.num_bottlenecks
        attentions: dict[str, list[torch.Tensor]] = {m: [] for m in modalities}

        for index, blocks in enumerate(self.layers):
            if index < self.fusion_layer:  # unimodal layer: each modality over its own tokens only
                for m in modalities:
                    sequences[m], weights = blocks[m](sequences[m], need_weights=return_attention)
                    if return_attention:
                        attentions[m].append(weights)
                continue
            updated_bottlenecks = []
            for m in modalities:
                out, weights = blocks[m](torch.cat([sequences[m], z], dim=1), need_weights=return_attention)
                sequences[m] = out[:, : out.shape[1] - b]
                updated_bottlenecks.append(out[:, out.shape[1] - b :])
                if return_attention:
                    attentions[m].append(weights)
            # A sample's bottlenecks carry only what its present modalities wrote into them.
            z = masked_mean(updated_bottlenecks, [masks[m] for m in modalities])

        cls = {m: self.final_norm(sequences[m][:, 0]) for m in modalities}
        return cls, (attentions if return_attention else None)

    def forward(
        self,
        tokens: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None = None,
        return_attention: bool = False,
    ) -> FusionOutput:
        """tokens: {modality: (B, N_m, D_m)}, any non-empty subset of input_dims.
        present: {modality: (B,) bool}; False drops that modality for that sample (default: all present).
        Returns FusionOutput(pooled (B, hidden_dim), attentions {m: L × (B, heads, 1+N_m+B, 1+N_m+B)} or None);
        attention index 0 is CLS, 1..N_m the tokens, the last B the bottlenecks. A sample with no
        modality present gets pooled = 0.
        """
        cls, attentions = self.modality_cls(tokens, present, return_attention)
        masks = present_masks(tokens, present)
        pooled = masked_mean(list(cls.values()), [masks[m] for m in cls])
        return FusionOutput(pooled=pooled, attentions=attentions)
