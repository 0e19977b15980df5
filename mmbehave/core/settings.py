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
from pathlib import Path
from typing import Any, Union

from omegaconf import OmegaConf

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
    test_at_end: bool = False        # evaluate the best checkpoint on the test split when the run finishes
    frozen_in_checkpoints: str = "copy"         # copy | reference (mmbehave.checkpoints.frozen_weights)
    background_saves: bool = True               # checkpoints written by a thread (checkpoints.background_writer)
    init_from: str | None = None                # an earlier model's weights to start from (training.warm_start)


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
    bf16_min_gflop: float = 1.0     # precision=auto: a part runs in bf16 from this many GFLOP a clip


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


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}


def _convert(value: Any, kind: Any, key: str) -> Any:
    """``value`` as ``kind``, accepting only lossless conversions (8.0 -> 8, 1 -> 1.0; never True -> 1).
    ``kind``: bool, int, float, str, Path, a ``Literal[...]`` of choices, ``tuple[T, ...]`` (a list or one
    value), ``dict[str, T]``, or a dataclass (a node of its own)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:  # checked by its owner (e.g. split's fractions: a list or a mapping)
        return value
    if origin is typing.Literal:
        text = _convert(value, str, key) if isinstance(value, (str, bool)) else value
        if text not in args:
            choices = [str(choice) for choice in args]
            raise ConfigError(f"{key}={value}: use {', '.join(choices[:-1])} or {choices[-1]}.")
        return text
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_convert(item, args[0], f"{key}[{i}]") for i, item in enumerate(items))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value!r} must be a mapping, e.g. {key}={{a: 1}}.")
        return {str(k): _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(kind):
        return typed_view(kind, value, key)
    if kind is Path and isinstance(value, str) and value.strip():
        return Path(value).expanduser()
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
    raise ConfigError(f"{key}={value!r} must be {_KINDS.get(kind, getattr(kind, '__name__', str(kind)))}.")


def typed_view(cls: type, node: Any, prefix: str, defaults: bool = False) -> Any:
    """A ``cls`` dataclass filled from config ``node`` (``prefix`` names it in errors). A key missing from the
    node is an error, unless ``defaults`` lets the field's default stand in (options of the smaller commands,
    and nodes a preset may leave out)."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    node = node or {}
    if not isinstance(node, dict):
        raise ConfigError(f"{prefix}={node!r} must be a mapping of settings.")
    node = {key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
            for key, value in node.items()}
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        key = f"{prefix}.{field.name}" if prefix else field.name
        hint = hints[field.name]
        args = typing.get_args(hint)
        optional = typing.get_origin(hint) in (Union, types.UnionType) and type(None) in args
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        if defaults and has_default and (field.name not in node or (node[field.name] is None and not optional)):
            continue  # left out (or null where null means nothing): the field's default
        if field.name not in node:
            raise ConfigError(f"{key} is missing from the config; add it (see conf/ for its default).")
        value = node[field.name]
        kind = next(a for a in args if a is not type(None)) if optional else hint
        if value is None:
            if not optional:
                raise ConfigError(f"{key}=null must be {_KINDS.get(kind, 'set')}.")
            values[field.name] = None
        elif dataclasses.is_dataclass(kind):
            values[field.name] = typed_view(kind, value, key, defaults)
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
    if OmegaConf.is_list(optimized_metric) or isinstance(optimized_metric, (list, tuple)):
        return tuple(str(name) for name in optimized_metric)
    return (str(optimized_metric),)
