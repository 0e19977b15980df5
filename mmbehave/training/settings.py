"""The run's contract: the training config read and checked once, as one frozen, typed object.

    cfg ─► read_run_settings ─► RunSettings(seed, training, hardware, data, modalities, heads, objectives,
                                            resume, output_dir, mlflow, print_config, record)

Every check that needs neither data nor a model runs here (``domain.config_checks``, the metric names), so a
mistake is one line before any work. After this, the raw config reaches only the builders of its ``_target_``
nodes (model, optimizer, schedule, loss, ``data.prepare``) and the run's record of itself (params, the stored
config); everything the run decides by is read from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.config_record import ConfigRecord
from mmbehave.core.settings import (
    HardwareSettings,
    MlflowSettings,
    TrainingSettings,
    objectives_of,
)
from mmbehave.data.settings import DataSettings
from mmbehave.domain.config_checks import check_config, configured_modalities
from mmbehave.domain.heads import HeadSpec, heads_from_config
from mmbehave.metrics.metric_names import check_metrics_are_recorded


@dataclass(frozen=True)
class RunSettings:
    seed: int
    training: TrainingSettings
    hardware: HardwareSettings
    data: DataSettings
    modalities: tuple[str, ...]      # ("video", "audio"), or one of them when the other's encoder is `none`
    heads: tuple[HeadSpec, ...]      # model.heads, in order
    objectives: tuple[str, ...]      # optimized_metric: one metric, or several for a multi-objective study
    resume: Path | None              # resume=: a checkpoints/latest.pth to continue
    output_dir: Path                 # this run's own folder (a resumed run writes into its original one)
    mlflow: MlflowSettings
    print_config: bool
    record: ConfigRecord             # the config resolved once: what the run logs, prints, stores and compares


def read_run_settings(cfg: DictConfig) -> RunSettings:
    """Every check that needs neither data nor a model, then the typed settings (ConfigError names the key)."""
    core = check_config(cfg)
    check_metrics_are_recorded(cfg)
    return RunSettings(
        seed=core.seed, training=core.training, hardware=core.hardware, data=DataSettings.from_config(cfg.data),
        modalities=configured_modalities(cfg), heads=heads_from_config(cfg),
        objectives=objectives_of(cfg.optimized_metric), resume=Path(cfg.resume) if cfg.get("resume") else None,
        output_dir=Path(cfg.paths.output_dir), mlflow=core.mlflow, print_config=bool(cfg.get("print_config")),
        record=ConfigRecord.of(cfg))
