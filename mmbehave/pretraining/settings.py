"""``python -m mmbehave.pretrain``'s contract: its config read and checked once (conf/pretrain.yaml).

    cfg ─► read_pretrain_settings ─► PretrainSettings(input, options: PretrainOptions, data, modalities, hardware,
                                                      mlflow, seed, resume, output_dir, record)

Every value that cannot work is one line naming its key here, before a clip is decoded or a model built. After
this the raw config reaches only the encoders' builders (their ``_target_`` nodes) and the run's own record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.config_record import ConfigRecord
from mmbehave.core.errors import ConfigError
from mmbehave.core.precision import read_precision
from mmbehave.core.settings import HardwareSettings, MlflowSettings, typed_view
from mmbehave.data.layout import SPLITS
from mmbehave.data.settings import DataSettings
from mmbehave.domain.config_checks import configured_modalities


@dataclass(frozen=True)
class DecoderSettings:
    """``pretrain.decoder.*``: the small transformer that reconstructs the masked tubes (thrown away after)."""
    hidden_size: int | None = None   # null: the encoder's width, at most 384 (VideoMAE's decoder)
    num_layers: int = 4
    num_heads: int | None = None     # null: the encoder's head count where it divides the width, else 1


@dataclass(frozen=True)
class PretrainOptions:
    """``pretrain.*`` (conf/pretrain.yaml says what each means)."""
    num_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    min_lr_ratio: float
    grad_clip_norm: float | None
    mask_ratio: float
    norm_pix_loss: bool
    contrastive_weight: float
    temperature: float
    projection_dim: int
    splits: tuple[str, ...]
    cache_dir: str
    max_clips: int | None
    stop_after_epoch: int | None
    decoder: DecoderSettings = DecoderSettings()


@dataclass(frozen=True)
class PretrainSettings:
    input: str | None                # a folder or a CSV of clips; None: the clips of data's dataset (pretrain.splits)
    options: PretrainOptions
    data: DataSettings
    modalities: tuple[str, ...]      # the encoders pretrained: ("video", "audio") or one of them
    hardware: HardwareSettings
    mlflow: MlflowSettings
    seed: int
    resume: Path | None
    output_dir: Path
    record: ConfigRecord

    @property
    def contrastive(self) -> bool:
        """Whether the pair is learnt: both encoders, and a weight for it."""
        return len(self.modalities) == 2 and self.options.contrastive_weight > 0


def read_pretrain_settings(cfg: DictConfig) -> PretrainSettings:
    options = typed_view(PretrainOptions, cfg.pretrain, "pretrain", defaults=True)
    _check(options)
    modalities = configured_modalities(cfg)
    if "video" not in modalities:
        raise ConfigError("video_encoder=none: pretraining's masked objective is the video encoder's; pretrain a "
                          "VideoMAE (video_encoder=videomae_tiny | videomae_base), with or without its audio encoder.")
    hardware = typed_view(HardwareSettings, cfg.hardware, "hardware", defaults=True)
    hardware = dataclasses.replace(hardware, precision=read_precision(hardware.precision, hardware.device,
                                                                      "hardware.precision"))
    if hardware.distributed:
        raise ConfigError("hardware.distributed=true: pretrain runs in one process (one CPU or GPU); use hardware=cpu "
                          "or hardware=cuda.")
    source = cfg.get("input")
    return PretrainSettings(
        input=str(source) if source not in (None, "") else None, options=options,
        data=DataSettings.from_config(cfg.data), modalities=modalities, hardware=hardware,
        mlflow=typed_view(MlflowSettings, cfg.mlflow, "mlflow", defaults=True), seed=int(cfg.seed),
        resume=Path(str(cfg.resume)).expanduser() if cfg.get("resume") else None,
        output_dir=Path(str(cfg.paths.output_dir)), record=ConfigRecord.of(cfg))


def _check(options: PretrainOptions) -> None:
    if not 0.0 < options.mask_ratio < 1.0:
        raise ConfigError(f"pretrain.mask_ratio={options.mask_ratio}: the share of each frame's patches hidden from "
                          "the encoder, in (0, 1); VideoMAE's is 0.9.")
    for key, value, low in (("num_epochs", options.num_epochs, 1), ("batch_size", options.batch_size, 2),
                            ("projection_dim", options.projection_dim, 1), ("decoder.num_layers",
                                                                            options.decoder.num_layers, 1)):
        if value < low:
            hint = " (the contrastive objective compares each clip with the others of its batch)" if key == "batch_size" else ""
            raise ConfigError(f"pretrain.{key}={value} must be at least {low}{hint}.")
    if options.lr <= 0 or options.temperature <= 0:
        raise ConfigError(f"pretrain.lr={options.lr} and pretrain.temperature={options.temperature} must be > 0.")
    if options.contrastive_weight < 0:
        raise ConfigError(f"pretrain.contrastive_weight={options.contrastive_weight}: >= 0 (0: masked video only).")
    unknown = [split for split in options.splits if split not in SPLITS]
    if unknown or not options.splits:
        raise ConfigError(f"pretrain.splits={list(options.splits)}: name some of {', '.join(SPLITS)} (the dataset's "
                          "clips pretrained on when input= is not given; their labels are never read).")
    if options.max_clips is not None and options.max_clips < 2:
        raise ConfigError(f"pretrain.max_clips={options.max_clips}: at least 2, or null for every clip.")
