"""``threshold=``: below it, a single-label head's top label is reported as ``uncertain`` instead of a guess; a
multi-label head reports every label at or above it.

    threshold=null                           the checkpoint's thresholds (a multi head's per-class ones, chosen
                                             on the validation split), else: single heads never uncertain,
                                             multi heads at 0.5
    threshold=0.6                            every head (every class of a multi head)
    threshold={species: 0.6, action: 0.3}    per head (a head left out keeps the checkpoint's)

An ecologist filtering thousands of clips wants the model to say when it does not know rather than name its
least-bad guess; the probability column still shows that guess's probability, and top-k still lists it.
The head names are checked against the model's once it is loaded (``resolve_thresholds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mmbehave.core.errors import CheckpointError, ConfigError

UNCERTAIN = "uncertain"
EVERY_HEAD = "*"
EXAMPLE = "e.g. threshold=0.6 or threshold={species:0.6,behavior:0.4}"
Threshold = float | np.ndarray  # one value, or a multi head's per-class values


def thresholds_from_option(value: Any) -> dict[str, float]:
    """The ``threshold=`` option as {head: threshold} ({"*": t} for one value for every head). Raises ConfigError."""
    if value is None:
        return {}
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(head): _probability(f"threshold.{head}", limit) for head, limit in value.items() if limit is not None}
    return {EVERY_HEAD: _probability("threshold", value)}


def checkpoint_thresholds(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Threshold]:
    """The thresholds a checkpoint stores ({head: value, or per-class values}), or {} when it stores none."""
    stored = checkpoint.get("thresholds") or {}
    thresholds: dict[str, Threshold] = {}
    try:
        for head, value in dict(stored).items():
            if isinstance(value, (list, tuple)):
                thresholds[head] = np.array([_probability(f"thresholds.{head}", v) for v in value], dtype=float)
            else:
                thresholds[head] = _probability(f"thresholds.{head}", value)
    except (ConfigError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its stored thresholds are unusable ({error}); pass threshold= to override "
                              "them.") from error
    return thresholds


def resolve_thresholds(option: Mapping[str, float], trained) -> dict[str, Threshold]:
    """Per head of ``trained`` (a TrainedModel): threshold= where given, else the checkpoint's; a multi head
    always has one (0.5 by default), a single head none unless asked (never ``uncertain``)."""
    names = [head.name for head in trained.heads]
    unknown = [head for head in option if head != EVERY_HEAD and head not in names]
    if unknown:
        raise ConfigError(f"threshold.{unknown[0]}: no such head; this model's heads are {', '.join(names)} ({EXAMPLE}).")
    stored = checkpoint_thresholds(trained.checkpoint, trained.path)
    chosen: dict[str, Threshold] = {}
    for head in trained.heads:
        size = len(trained.classes[head.name])
        value = option.get(head.name, option.get(EVERY_HEAD, stored.get(head.name)))
        if isinstance(value, np.ndarray) and value.shape != (size,):
            value = None  # per-class values that do not fit the class list: the default
        if value is None and head.multi:
            value = 0.5
        if value is not None:
            chosen[head.name] = value
    return chosen


def label_or_uncertain(name: str, probability: float, threshold: float | None) -> str:
    """``name``, or ``uncertain`` when its probability is below the head's threshold."""
    return UNCERTAIN if threshold is not None and probability < threshold else name


def _probability(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{key}={value}: must be a probability between 0 and 1 (a top probability below it "
                          f"makes the label '{UNCERTAIN}'), or null for none; {EXAMPLE}.")
    return float(value)
