"""ResNet18 audio encoder: the log-mel spectrogram read as a one-channel image.

    log-mel (B, 1, n_mels, time), standardised by the dataset
      ▼
    conv1 7×7 s2 (1 → 64 channels) ─ BN ─ ReLU ─ maxpool s2
      ▼
    layer1 .. layer4 (torchvision ResNet18 stages; ×32 downsampling overall, 512 channels)
      ▼
    feature map (B, 512, F', T')  with F' = ceil(n_mels / 32), T' = ceil(time / 32)
      │ flatten frequency × time (frequency-major), no avgpool / fc: fusion wants tokens
      ▼
    tokens (B, F'·T', 512)

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016. ImageNet features transfer
to spectrograms (Palanisamy et al., "Rethinking CNN Models for Audio Classification", 2020); the
three RGB filters of conv1 are summed into one, which is what a grey image repeated on three
channels would see, so pretrained activations keep their scale.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import resnet18

from mmbehave.models.pretrained import (
    PretrainedWeightsError,
    announce_fallback,
    check_on_load_failure,
    load_resnet18_imagenet_state_dict,
    one_line,
    resnet18_cache_path,
)

logger = logging.getLogger(__name__)


def _one_channel_stem(conv1: nn.Conv2d) -> nn.Conv2d:
    """conv1 with one input channel whose weights are `conv1`'s summed over RGB."""
    stem = nn.Conv2d(1, conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding, bias=False)
    with torch.no_grad():
        stem.weight.copy_(conv1.weight.sum(dim=1, keepdim=True))
    return stem


class ResNetAudioEncoder(nn.Module):
    """Log-mel (B, 1, n_mels, time) → tokens (B, F'·T', 512), F' = ceil(n_mels/32), T' = ceil(time/32).

    `state_dict`: torchvision ResNet18 weights (3-channel conv1) to start from, or None for random init.
    `freeze_backbone=True`: no gradients, and BatchNorm stays in eval mode (running statistics
    frozen) even under `.train()`; otherwise small fine-tuning batches would overwrite ImageNet's.
    """

    output_dim = 512

    def __init__(self, state_dict: dict[str, torch.Tensor] | None = None, freeze_backbone: bool = False):
        super().__init__()
        resnet = resnet18(weights=None)
        if state_dict is not None:
            resnet.load_state_dict(state_dict)  # strict: a wrong file fails here, not silently
        self.backbone = nn.Sequential(
            OrderedDict(
                conv1=_one_channel_stem(resnet.conv1),
                bn1=resnet.bn1,
                relu=resnet.relu,
                maxpool=resnet.maxpool,
                layer1=resnet.layer1,
                layer2=resnet.layer2,
                layer3=resnet.layer3,
                layer4=resnet.layer4,
            )
        )
        self.fallback_reason: str | None = None
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.train(self.training)  # puts BatchNorm into eval mode

    def train(self, mode: bool = True) -> "ResNetAudioEncoder":
        super().train(mode)
        if self.freeze_backbone:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"audio must be a log-mel batch (B, 1, n_mels, time); got shape {tuple(x.shape)}")
        features = self.backbone(x)  # (B, 512, F', T')
        return features.flatten(2).transpose(1, 2)  # (B, F'·T', 512)


def _load_failure_advice(weights_path: str | None, reason: str) -> str:
    where = f"weights_path {weights_path}" if weights_path else f"the torch hub cache ({resnet18_cache_path()})"
    return (
        f"ResNet18 ImageNet weights (torchvision IMAGENET1K_V1) could not be loaded from {where}: {reason}. "
        f"To fix, any one of: "
        f"(1) set audio_encoder.weights_path=/path/to/resnet18-f37072fd.pth (a torchvision resnet18 state_dict); "
        f"(2) copy that file into {resnet18_cache_path().parent}; "
        f"(3) train from scratch with audio_encoder.pretrained=false; "
        f"(4) accept random init with audio_encoder.on_load_failure=fallback."
    )


def build_resnet18_audio_encoder(
    pretrained: bool,
    freeze_backbone: bool,
    on_load_failure: str,
    weights_path: str | None = None,
) -> ResNetAudioEncoder:
    """Build the audio encoder for `conf/audio_encoder/resnet18.yaml`.

    pretrained=True: ImageNet weights from `weights_path`, else the torch hub cache, else a download
    (see `mmbehave.models.pretrained`). If that fails: on_load_failure="raise" raises
    PretrainedWeightsError with how to fix it; "fallback" returns a random-init encoder with
    `fallback_reason` set.
    """
    check_on_load_failure(on_load_failure, "audio_encoder")
    if not pretrained:
        return ResNetAudioEncoder(None, freeze_backbone=freeze_backbone)
    try:
        state_dict = load_resnet18_imagenet_state_dict(weights_path)
        encoder = ResNetAudioEncoder(state_dict, freeze_backbone=freeze_backbone)
    except (PretrainedWeightsError, RuntimeError) as err:  # RuntimeError: keys / shapes do not fit ResNet18
        reason = one_line(err)
        if on_load_failure == "raise" or freeze_backbone:  # a frozen stand-in would be fixed random features
            raise PretrainedWeightsError(_load_failure_advice(weights_path, reason)
                                         + (" (audio_encoder.freeze_backbone=true needs these weights: a frozen "
                                            "random ResNet18 would give fixed random features.)" if freeze_backbone
                                            else "")) from err
        encoder = ResNetAudioEncoder(None, freeze_backbone=freeze_backbone)
        encoder.fallback_reason = f"resnet18 ImageNet weights could not be loaded ({reason}); using random init"
        announce_fallback(
            f"{encoder.fallback_reason}. Set audio_encoder.on_load_failure=raise to stop instead and see how to fix it."
        )
        return encoder
    logger.info("Loaded ResNet18 ImageNet weights into the audio encoder")
    return encoder
