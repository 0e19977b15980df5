"""Where the fusion looks: attention from the CLS and bottleneck tokens to each modality's tokens.

    model(video, audio, return_attention=True).attentions[m][layer]   (B, heads, L, L), L = 1 + N_m + B_n
        row 0 = CLS_m, rows L−B_n.. = the bottlenecks, columns 1..N_m = modality m's tokens
      │ mean over heads (and over the bottleneck rows)
      │ keep the columns of m's tokens; renormalise them to sum to 1 (``share`` keeps what they had)
      ▼
    video: (t, h, w) grid of tubelets        audio: (F', T') grid of ResNet18 layer4 cells (frequency-major)

Only MBT fusion has attention (the concat baseline has none). Each modality's CLS sees only its own
tokens and the bottlenecks, so "CLS → audio" is the audio stream's CLS, and "bottlenecks → video" is
what the shared tokens read from the video in that layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mmbehave.models.cnn3d import CNN3DEncoder

QUERIES = ("cls", "bottlenecks")


@dataclass
class TokenAttention:
    """One clip's attention from one query (CLS or the bottlenecks) to one modality's tokens.

    weights: on the token grid — video (t, h, w), audio (frequency, time) — summing to 1.
    share: the part of the query's attention that went to these tokens before renormalising (the rest
    went to the CLS token itself and to the bottlenecks).
    """

    weights: np.ndarray
    share: float


def num_bottlenecks(model: nn.Module) -> int:
    """B_n of the model's MBT fusion; ValueError for a fusion without attention, or a model whose fusion cannot be
    looked into (an ONNX export returns logits only)."""
    fusion = getattr(model, "fusion", None)
    if fusion is None:
        raise ValueError(f"{type(model).__name__} returns no attention maps (an ONNX graph's outputs are its logits)")
    if not hasattr(fusion, "num_bottlenecks"):
        raise ValueError(f"{type(fusion).__name__} has no attention maps; attention figures need fusion=mbt")
    return int(fusion.num_bottlenecks)


def video_token_grid(encoder: nn.Module, num_frames: int, image_size: int, num_tokens: int) -> tuple[int, int, int]:
    """(t, h, w) layout of the video encoder's tokens (time-major, then rows, then columns)."""
    config = getattr(getattr(encoder, "backbone", None), "config", None)
    if config is not None and hasattr(config, "tubelet_size"):  # VideoMAE: tubelets of tubelet × patch × patch
        side = image_size // config.patch_size
        grid = (num_frames // config.tubelet_size, side, side)
    elif isinstance(encoder, CNN3DEncoder):  # strides 2 in time, 16 in space
        side = math.ceil(image_size / 16)
        grid = (math.ceil(num_frames / 2), side, side)
    else:
        raise ValueError(f"no known token layout for video encoder {type(encoder).__name__}")
    if math.prod(grid) != num_tokens:
        raise ValueError(f"video encoder gave {num_tokens} tokens, expected {grid} = {math.prod(grid)}")
    return grid


def audio_token_grid(n_mels: int, mel_frames: int, num_tokens: int) -> tuple[int, int]:
    """(F', T') layout of the ResNet18 audio tokens: ×32 downsampling in frequency and time."""
    grid = (math.ceil(n_mels / 32), math.ceil(mel_frames / 32))
    if math.prod(grid) != num_tokens:
        raise ValueError(f"audio encoder gave {num_tokens} tokens, expected {grid} = {math.prod(grid)}")
    return grid


def query_attention(layer_attention: torch.Tensor, num_tokens: int, bottlenecks: int, query: str) -> torch.Tensor:
    """(B, heads, L, L) → (B, N) attention from ``query`` ("cls" or "bottlenecks") to the modality's N tokens,
    averaged over heads (and bottleneck rows); not renormalised."""
    weights = layer_attention.float().mean(dim=1)  # (B, L, L)
    if query == "cls":
        rows = weights[:, 0]
    elif query == "bottlenecks":
        if bottlenecks == 0:
            raise ValueError("this model has fusion.num_bottlenecks=0: there are no bottleneck tokens")
        rows = weights[:, weights.shape[1] - bottlenecks:].mean(dim=1)
    else:
        raise ValueError(f"query must be one of {QUERIES}; got {query!r}")
    return rows[:, 1: 1 + num_tokens]


def clip_attention_maps(model: nn.Module, attentions: dict[str, list[torch.Tensor]], video_shape: tuple[int, ...] | None,
                        mel_shape: tuple[int, int] | None, layer: int = -1) -> list[dict[tuple[str, str], TokenAttention]]:
    """Per clip of the batch: {(modality, query): TokenAttention} for every modality with attention.

    video_shape: (3, T, H, W) of one clip; mel_shape: (n_mels, time); layer: which fusion layer (−1 = last).
    """
    bottlenecks = num_bottlenecks(model)
    batch_maps: list[dict] = []
    for modality, layers in attentions.items():
        attention = layers[layer]
        num_tokens = attention.shape[-1] - 1 - bottlenecks
        if modality == "video":
            grid = video_token_grid(model.video_encoder, video_shape[1], video_shape[2], num_tokens)
        else:
            grid = audio_token_grid(mel_shape[0], mel_shape[1], num_tokens)
        for query in QUERIES:
            if query == "bottlenecks" and bottlenecks == 0:
                continue
            raw = query_attention(attention, num_tokens, bottlenecks, query)  # (B, N)
            share = raw.sum(dim=1).clamp(min=1e-12)
            normalised = (raw / share[:, None]).cpu().numpy()
            for index in range(raw.shape[0]):
                while len(batch_maps) <= index:
                    batch_maps.append({})
                batch_maps[index][(modality, query)] = TokenAttention(normalised[index].reshape(grid), float(share[index]))
    return batch_maps


def pick_clips(labels: list[int], count: int) -> list[int]:
    """Indices of ``count`` clips, one per class in turn (the first clip of each label, then the second...),
    so that a handful of figures shows different classes."""
    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    picked: list[int] = []
    rank = 0
    while len(picked) < min(count, len(labels)):
        for label in sorted(by_label):
            if rank < len(by_label[label]) and len(picked) < count:
                picked.append(by_label[label][rank])
        rank += 1
    return picked
