"""A small 3D CNN video encoder: the cheap baseline, and the stand-in when VideoMAE weights are missing.

    video (B, 3, T, H, W) in [0, 1]
      │ normalise (ImageNet mean / std, or each clip's own: input_norm=clip)
      ▼
    stem    Conv3d k(3,7,7) s(1,2,2) ─ BN ─ ReLU      width      T,    H/2,  W/2
    stage2  Conv3d k3       s(2,2,2) ─ BN ─ ReLU      2·width    T/2,  H/4,  W/4
    stage3  Conv3d k3       s(1,2,2) ─ BN ─ ReLU      4·width    T/2,  H/8,  W/8
    stage4  Conv3d k3       s(1,2,2) ─ BN ─ ReLU      8·width    T/2,  H/16, W/16
      │ flatten (t, h, w) into tokens, Linear 8·width → feature_dim
      ▼
    tokens (B, t·h·w, feature_dim)

The strides (×2 in time, ×16 in space) match VideoMAE's tubelet 2 × patch 16, so a fallback from
VideoMAE yields as many tokens as VideoMAE would and fits the same fusion settings (`max_tokens`).
Conv-BN-ReLU stages follow the C3D / 3D-ResNet line of video CNNs (Tran et al., "Learning
Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015), without residuals: this is a
baseline, not a contender.

This file also holds the video input convention both video encoders share (`VideoNormalize`).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_video_shape(x: torch.Tensor) -> None:
    """Raise ValueError unless `x` is a (B, 3, T, H, W) video batch."""
    if x.dim() != 5 or x.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, T, H, W) floats in [0, 1]; got shape {tuple(x.shape)}")


INPUT_NORMS = ("fixed", "clip")


class VideoNormalize(nn.Module):
    """Per-channel (x - mean) / std for (B, 3, T, H, W) videos in [0, 1].

    ``fixed`` (default): the encoder's statistics. The dataset only scales uint8 to [0, 1]; the statistics
    belong to the encoder's pretraining, so the encoder owns them. Buffers are persistent: a checkpoint
    remembers the statistics it was trained with even if the processor config is not at hand when reloaded.
    ``clip``: each clip's own mean and std per channel over its frames, so a site's light, colour cast and
    contrast (a grey infrared night camera, a bright meadow) are evened out before the encoder sees them; it
    lifted the field benchmark's leave-one-site-out score beyond its spread (docs/benchmarks.md).
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 input_norm: str = "fixed"):
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB); got mean={list(mean)}, std={list(std)}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm={input_norm!r} is not one of {', '.join(INPUT_NORMS)}")
        self.per_clip = input_norm == "clip"
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_clip:
            # A floor on the std: a flat (black, overexposed) clip stays finite instead of amplifying noise.
            return (x - x.mean(dim=(2, 3, 4), keepdim=True)) / x.std(dim=(2, 3, 4), keepdim=True).clamp(min=1e-2)
        return (x - self.mean) / self.std


def _conv_bn_relu(c_in: int, c_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)  # "same" padding: size shrinks only by the stride
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),  # BN supplies the bias
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


class CNN3DEncoder(nn.Module):
    """Video (B, 3, T, H, W) in [0, 1] → tokens (B, ceil(T/2)·ceil(H/16)·ceil(W/16), feature_dim).

    Works for any T ≥ 1 and H, W ≥ 1 (coarser grids just give fewer tokens); sized for T ≥ 2, H, W ≥ 16.
    """

    def __init__(self, feature_dim: int = 256, width: int = 32, input_norm: str = "fixed"):
        super().__init__()
        self.output_dim = feature_dim
        self.fallback_reason: str | None = None  # set by a factory that built this instead of VideoMAE
        self.normalize = VideoNormalize(input_norm=input_norm)
        self.stages = nn.Sequential(
            # Wide spatial kernel but full time resolution: motion cues are only a few frames long.
            _conv_bn_relu(3, width, (3, 7, 7), (1, 2, 2)),
            _conv_bn_relu(width, 2 * width, (3, 3, 3), (2, 2, 2)),  # the only temporal stride, as VideoMAE's tubelet 2
            _conv_bn_relu(2 * width, 4 * width, (3, 3, 3), (1, 2, 2)),
            _conv_bn_relu(4 * width, 8 * width, (3, 3, 3), (1, 2, 2)),
        )
        self.project = nn.Linear(8 * width, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_video_shape(x)
        features = self.stages(self.normalize(x))  # (B, 8·width, t, h, w)
        tokens = features.flatten(2).transpose(1, 2)  # (B, t·h·w, 8·width), time-major like VideoMAE
        return self.project(tokens)
