"""Typed views of config nodes: each value gets its type once, where the config is read.

    typed_view(TrainingSettings, cfg.training, "training")   # any frozen dataclass, from any config node
    cfg (DictConfig) ──read_settings──► CoreSettings(seed, training, hardware, mlflow)

A value of the wrong type (``training.batch_size=eight``) is a ``ConfigError`` naming the key, before any
work. The run's whole contract (data, heads, objectives, ...) is ``mmbehave.training.settings.RunSettings``,
built on these; the parts built from config through ``_target_`` (model, optimizer, loss, LR schedule) are
not here: Hydra instantiates them with their own arguments.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from mmbehave.core.errors import ConfigError


@dataclass(frozen=True)
class TrainingSettings:
    """``training.*`` (see conf/train.yaml for what each key means)."""

    num_epochs: int
    batch_size: int
    grad_accum_steps: int
    grad_clip_norm: float | None
    limit_train_batches: int | None
    limit_val_batches: int | None
    overfit_batches: int
    modality_dropout: float
    stop_after_epoch: int | None
    monitor: str
    monitor_mode: str
    early_stopping_patience: int | None
    profile_steps: int
    feature_cache: str
    feature_cache_dir: str
    shuffle: bool


@dataclass(frozen=True)
class HardwareSettings:
    """``hardware.*``."""

    device: str
    precision: str
    num_workers: int
    pin_memory: bool
    torch_threads: int | None
    distributed: bool               # under torchrun, one process per device (mmbehave.training.distributed)
    backend: str                    # gloo | nccl
    find_unused_parameters: bool


@dataclass(frozen=True)
class MlflowSettings:
    """``mlflow.*`` of the training config (``tracking_uri`` as given: null means $MLFLOW_TRACKING_URI, else the
    project's SQLite store; ``tracking.store.resolve_tracking_uri`` decides)."""

    tracking_uri: str | None
    experiment_name: str
    run_name: str | None
    log_model: str                   # auto | true | false
    registered_model_name: str | None
    http_retries: int | None
    http_timeout_s: float | None


@dataclass(frozen=True)
class CoreSettings:
    seed: int
    training: TrainingSettings
    hardware: HardwareSettings
    mlflow: MlflowSettings


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _convert(value: Any, kind: type, key: str) -> Any:
    """``value`` as ``kind``, accepting only lossless conversions (8.0 -> 8, 1 -> 1.0; never True -> 1)."""
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is str and isinstance(value, bool):  # YAML reads `true` / `false` as booleans: auto | true | false keys
        return str(value).lower()
    raise ConfigError(f"{key}={value!r} must be {_KINDS[kind]}.")


def typed_view(cls: type, node: Any, prefix: str) -> Any:
    """A ``cls`` dataclass filled from config ``node`` (``prefix`` names it in errors)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        key = f"{prefix}.{field.name}" if prefix else field.name
        if field.name not in node:
            raise ConfigError(f"{key} is missing from the config; add it (see conf/train.yaml for its default).")
        value, hint = node[field.name], hints[field.name]
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (Union, types.UnionType) and type(None) in args
        kind = next(a for a in args if a is not type(None)) if optional else hint
        if dataclasses.is_dataclass(kind):
            values[field.name] = typed_view(kind, value, key)
        elif value is None:
            if not optional:
                raise ConfigError(f"{key}=null must be {_KINDS[kind]}.")
            values[field.name] = None
        else:
            values[field.name] = _convert(value, kind, key)
    return cls(**values)


def read_settings(cfg: Any) -> CoreSettings:
    return CoreSettings(seed=_convert(cfg.seed, int, "seed"),
                        training=typed_view(TrainingSettings, cfg.training, "training"),
                        hardware=typed_view(HardwareSettings, cfg.hardware, "hardware"),
                        mlflow=typed_view(MlflowSettings, cfg.mlflow, "mlflow"))


def objectives_of(optimized_metric: Any) -> tuple[str, ...]:
    """``optimized_metric`` as a tuple of metric names: the one place that asks whether it names one metric or
    several (a multi-objective study)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_list(optimized_metric) or isinstance(optimized_metric, (list, tuple)):
        return tuple(str(name) for name in optimized_metric)
    return (str(optimized_metric),)
