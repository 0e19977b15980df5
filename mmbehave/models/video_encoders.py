"""VideoMAE video encoder: a ViT over space-time tubelets, pretrained by masked video modelling.

    video (B, 3, T, H, W) in [0, 1]
      │ check T, H, W against the model config
      │ normalise (checkpoint's processor mean / std, else ImageNet)
      │ permute to (B, T, 3, H, W), as VideoMAEModel expects
      ▼
    VideoMAEModel: tubelets (tubelet_size × patch_size × patch_size) → linear embedding
                   + fixed sinusoidal positions → num_layers transformer blocks
      ▼
    tokens = last_hidden_state (B, (T/tubelet)·(H/patch)·(W/patch), hidden_size), layer-normalised per token
             when the checkpoint has no final norm of its own (one that pools by mean, as the Kinetics one)
      │ token_pool (t, h, w), when not (1, 1, 1): mean over each t×h×w block of the token grid
      ▼
    (B, N / (t·h·w), hidden_size)

Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised Video
Pre-Training", NeurIPS 2022. The model is transformers' `VideoMAEModel`.

`build_videomae_encoder` is what `conf/video_encoder/videomae_*.yaml` instantiate. When pretrained
weights cannot be had it either stops with instructions or, on request, falls back to the small
3D CNN, marking the encoder with `fallback_reason` so the run records what was really trained.
"""

from __future__ import annotations

import json
import logging
from typing import Sequence

import torch
from torch import nn
from transformers import VideoMAEConfig, VideoMAEModel

from mmbehave.models.cnn3d import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CNN3DEncoder,
    VideoNormalize,
    check_video_shape,
)
from mmbehave.models.pretrained import (
    PretrainedWeightsError,
    announce_fallback,
    check_on_load_failure,
    find_hf_file,
    load_hf_pretrained,
)

logger = logging.getLogger(__name__)

# Processor configs that may carry the pixel statistics the checkpoint was trained with.
_PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def token_grid(config: VideoMAEConfig) -> tuple[int, int, int]:
    """(time, height, width) of a VideoMAE's tubelet grid: its tokens are this grid flattened, time slowest."""
    height, width = _pair(config.image_size)
    patch_h, patch_w = _pair(config.patch_size)
    return config.num_frames // config.tubelet_size, height // patch_h, width // patch_w


def check_token_pool(token_pool: Sequence[int], grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """``token_pool`` as a (t, h, w) tuple that tiles ``grid``; ValueError naming the key and the fix otherwise."""
    pool = tuple(int(k) for k in token_pool)
    if len(pool) != 3 or min(pool) < 1:
        raise ValueError(f"video_encoder.token_pool must be three positive integers (time, height, width); got "
                         f"{list(token_pool)}")
    if any(size % k for size, k in zip(grid, pool)):
        raise ValueError(f"video_encoder.token_pool={list(pool)} does not tile this VideoMAE's token grid {list(grid)} "
                         f"(time, height, width); pick factors of each, e.g. [1, 1, 1] to keep every token")
    return pool


def positions_on_grid(native: tuple[int, int, int], grid: tuple[int, int, int], hidden_size: int) -> torch.Tensor:
    """The checkpoint's fixed sinusoidal positions, laid out on its (t, h, w) grid and resized trilinearly to
    ``grid``: (1, t'·h'·w', hidden). VideoMAE's own table is 1-D over the flattened grid, so recomputing it for
    another grid would give a token at (t, h, w) the position of some other place and time."""
    from transformers.models.videomae.modeling_videomae import (
        get_sinusoid_encoding_table,
    )

    table = get_sinusoid_encoding_table(native[0] * native[1] * native[2], hidden_size).float()
    volume = table.reshape(1, *native, hidden_size).permute(0, 4, 1, 2, 3)  # (1, D, t, h, w)
    resized = torch.nn.functional.interpolate(volume, size=grid, mode="trilinear", align_corners=True)
    return resized.permute(0, 2, 3, 4, 1).reshape(1, -1, hidden_size)


class VideoMAEEncoder(nn.Module):
    """Video (B, 3, T, H, W) in [0, 1] → tokens (B, N, hidden_size) from a `VideoMAEModel`.

    T, H, W must equal the config's num_frames and image_size (ValueError otherwise).
    `freeze_backbone=True` stops gradients into the transformer (a linear-probe-style run).
    `position_table`: positions resized from a pretrained checkpoint's grid (``positions_on_grid``), kept as a
    buffer so that checkpoints carry them (VideoMAE itself recomputes its table from the config at build).
    `token_pool`: (t, h, w) blocks of the token grid averaged into one token each. The fusion's cost grows with
    the square of the token count; (2, 2, 2) turns VideoMAE-base's 1568 tokens into 196 (docs/sweeps.md measures
    both). Applied after the backbone, so a feature cache stores the pooled tokens.
    """

    def __init__(
        self,
        backbone: VideoMAEModel,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        freeze_backbone: bool = False,
        position_table: torch.Tensor | None = None,
        input_norm: str = "fixed",
        token_pool: Sequence[int] = (1, 1, 1),
    ):
        super().__init__()
        self.backbone = backbone
        self.grid = token_grid(backbone.config)
        self.token_pool = check_token_pool(token_pool, self.grid)
        self.normalize = VideoNormalize(mean, std, input_norm)
        self.output_dim: int = backbone.config.hidden_size
        self.fallback_reason: str | None = None
        if position_table is not None:
            self.register_buffer("position_table", position_table)
        if freeze_backbone:
            self.backbone.requires_grad_(False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint trained on a resized grid carries its positions: adopt them when rebuilding from config.
        key = prefix + "position_table"
        if key in state_dict and "position_table" not in self._buffers:
            self.register_buffer("position_table", torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_video_shape(x)
        if "position_table" in self._buffers:
            self.backbone.embeddings.position_embeddings = self.position_table
        config = self.backbone.config
        expected = (config.num_frames, *_pair(config.image_size))
        if tuple(x.shape[2:]) != expected:
            raise ValueError(
                f"VideoMAE expects (T, H, W) = {expected} (video_encoder num_frames / image_size); "
                f"got {tuple(x.shape[2:])} from video of shape {tuple(x.shape)}"
            )
        pixel_values = self.normalize(x).permute(0, 2, 1, 3, 4)  # (B, T, 3, H, W)
        tokens = self.backbone(pixel_values=pixel_values).last_hidden_state
        if self.backbone.layernorm is None:
            # A mean-pooling checkpoint normalises after pooling (its classifier's fc_norm, not part of the model
            # loaded here), so its tokens arrive raw; a pre-norm transformer's tokens get a final norm like this.
            tokens = nn.functional.layer_norm(tokens, tokens.shape[-1:])
        return self._pooled(tokens)

    def _pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, t·h·w, D) tokens, time slowest → the mean of each token_pool block, in the same order."""
        if self.token_pool == (1, 1, 1):
            return tokens
        volume = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *self.grid)  # (B, D, t, h, w)
        pooled = nn.functional.avg_pool3d(volume, kernel_size=self.token_pool)
        return pooled.flatten(2).transpose(1, 2)


def _processor_statistics(model_name: str) -> tuple[list[float], list[float]] | None:
    """(image_mean, image_std) from the checkpoint's processor config, or None if it has none."""
    for filename in _PROCESSOR_FILES:
        path = find_hf_file(model_name, filename)
        if path is None:
            continue
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # unreadable side file: the default statistics still work
            logger.warning("Ignoring %s (%s)", path, err)
            continue
        mean, std = config.get("image_mean"), config.get("image_std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
            return [float(v) for v in mean], [float(v) for v in std]
    return None


def _load_failure_advice(model_name: str, reason: str) -> str:
    return (
        f"VideoMAE weights '{model_name}' could not be loaded: {reason}. To fix, any one of: "
        f"(1) connect to the internet and retry; "
        f"(2) on a connected machine run `hf download {model_name}` (older clients: "
        f"`huggingface-cli download {model_name}`), copy its Hugging Face cache here and point HF_HOME at it; "
        f"(3) set video_encoder.model_name=/path/to/a/local/model/directory; "
        f"(4) train from scratch with video_encoder.pretrained=false; "
        f"(5) accept the small 3D CNN instead with video_encoder.on_load_failure=fallback."
    )


def build_videomae_encoder(
    model_name: str | None,
    pretrained: bool,
    freeze_backbone: bool,
    on_load_failure: str,
    num_frames: int,
    image_size: int,
    tubelet_size: int = 2,
    patch_size: int = 16,
    hidden_size: int = 768,
    num_layers: int = 12,
    num_heads: int = 12,
    intermediate_size: int = 3072,
    fallback_feature_dim: int = 768,
    input_norm: str = "fixed",
    token_pool: Sequence[int] = (1, 1, 1),
) -> nn.Module:
    """Build the video encoder for `conf/video_encoder/videomae_*.yaml`.

    pretrained=True: load `model_name` (hub id or local directory) with its num_frames / image_size
    replaced by the data's; the positions are fixed sinusoids, recomputed for the new grid, so the
    weights still apply. The size fields (tubelet_size ... intermediate_size) come from the checkpoint.
    pretrained=False: random init from the size fields.
    input_norm: ``fixed`` (the checkpoint's mean / std) or ``clip`` (each clip's own; ``VideoNormalize``).
    token_pool: (t, h, w) blocks of the token grid averaged into one token (``VideoMAEEncoder``).
    Returns a VideoMAEEncoder, or a CNN3DEncoder(fallback_feature_dim) with `fallback_reason` set when
    loading failed and on_load_failure="fallback". Raises PretrainedWeightsError when it failed and
    on_load_failure="raise"; ValueError for invalid settings.
    """
    check_on_load_failure(on_load_failure, "video_encoder")
    if not pretrained:
        if hidden_size % num_heads != 0:
            raise ValueError(
                f"video_encoder.hidden_size={hidden_size} is not divisible by video_encoder.num_heads={num_heads}"
            )
        config = VideoMAEConfig(
            num_frames=num_frames,
            image_size=image_size,
            tubelet_size=tubelet_size,
            patch_size=patch_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size,
        )
        return VideoMAEEncoder(VideoMAEModel(config), freeze_backbone=freeze_backbone, input_norm=input_norm,
                               token_pool=token_pool)

    if not model_name:
        raise ValueError("video_encoder.model_name is required when video_encoder.pretrained=true")
    try:
        backbone = load_hf_pretrained(
            VideoMAEModel.from_pretrained, model_name, num_frames=num_frames, image_size=image_size
        )
    except PretrainedWeightsError as err:
        return _stand_in(model_name, err, on_load_failure, freeze_backbone, fallback_feature_dim, input_norm)
    return _loaded_encoder(backbone, model_name, freeze_backbone, input_norm, token_pool)


def _stand_in(model_name: str, err: PretrainedWeightsError, on_load_failure: str, freeze_backbone: bool,
              feature_dim: int, input_norm: str) -> CNN3DEncoder:
    """The cnn3d that trains instead when the weights could not be loaded, or the error with its fixes."""
    if on_load_failure == "raise" or freeze_backbone:  # a frozen stand-in would be fixed random features
        raise PretrainedWeightsError(_load_failure_advice(model_name, str(err))
                                     + (" (video_encoder.freeze_backbone=true needs these weights: a frozen "
                                        "stand-in would train on fixed random features.)" if freeze_backbone
                                        else "")) from err
    encoder = CNN3DEncoder(feature_dim=feature_dim, input_norm=input_norm)
    encoder.fallback_reason = f"videomae '{model_name}' could not be loaded ({err}); using cnn3d"
    announce_fallback(
        f"{encoder.fallback_reason}. This run trains a small 3D CNN from scratch, not VideoMAE; "
        f"set video_encoder.on_load_failure=raise to stop instead and see how to fix it."
    )
    return encoder


def _loaded_encoder(backbone: VideoMAEModel, model_name: str, freeze_backbone: bool, input_norm: str,
                    token_pool: Sequence[int]) -> VideoMAEEncoder:
    """A loaded checkpoint wrapped with its processor's statistics and, on another token grid, resized positions."""
    statistics = _processor_statistics(model_name)
    if statistics is None:
        logger.info("No processor config for '%s'; normalising with ImageNet mean / std", model_name)
        statistics = (list(IMAGENET_MEAN), list(IMAGENET_STD))
    mean, std = statistics
    native = token_grid(load_hf_pretrained(VideoMAEConfig.from_pretrained, model_name))
    grid = token_grid(backbone.config)
    positions = None
    if grid != native:
        logger.info("VideoMAE '%s' was trained on a %s token grid (time, height, width); its positions are resized "
                    "in 3-D to this run's %s", model_name, native, grid)
        positions = positions_on_grid(native, grid, backbone.config.hidden_size)
    config = backbone.config
    logger.info("Loaded VideoMAE '%s' (%d frames of %s px)", model_name, config.num_frames, config.image_size)
    return VideoMAEEncoder(backbone, mean=mean, std=std, freeze_backbone=freeze_backbone, position_table=positions,
                           input_norm=input_norm, token_pool=token_pool)
