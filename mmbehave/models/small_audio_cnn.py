"""A small audio encoder for students (conf/student/): four strided convolutions over the log-mel.

    log-mel (B, 1, n_mels, time)
      ▼  4 × [conv 3×3 stride 2 ─ BN ─ ReLU], width w, 2w, 4w, 4w   (×16 downsampling)
    feature map (B, 4w, F', T')  ─ flatten frequency × time ─►  tokens (B, F'·T', 4w)

Why not a narrower ResNet18: the ResNet's cost is its 7×7 stem and full-width early stages at high resolution
(0.26 GFLOP a clip of 64 mels × 51 frames, 80% of the default model's); striding from the first layer costs
about 1/50 of that, which is what a student for a Raspberry Pi or an archive on a CPU needs. The teacher's soft
labels carry what the wider network would have had to find alone.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallAudioCNN(nn.Module):
    """Log-mel (B, 1, n_mels, time) → tokens (B, F'·T', 4·width), F' = ceil(n_mels/16), T' = ceil(time/16)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"audio_encoder.width must be >= 1; got {width}")
        channels = [1, width, 2 * width, 4 * width, 4 * width]
        layers = []
        for inputs, outputs in zip(channels, channels[1:]):
            layers += [nn.Conv2d(inputs, outputs, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(outputs),
                       nn.ReLU(inplace=True)]
        self.backbone = nn.Sequential(*layers)
        self.output_dim = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"audio must be a log-mel batch (B, 1, n_mels, time); got shape {tuple(x.shape)}")
        return self.backbone(x).flatten(2).transpose(1, 2)
