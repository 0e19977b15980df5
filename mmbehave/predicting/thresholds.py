"""``threshold=``: below it, a head's top label is reported as ``uncertain`` instead of a guess.

    threshold=null                           the checkpoint's thresholds, if it stores any; else never uncertain
    threshold=0.6                            every head
    threshold={species: 0.6, behavior: 0.4}  per head (a head left out keeps the checkpoint's, or none)

An ecologist filtering thousands of clips wants the model to say when it does not know rather than name its
least-bad guess; the probability column still shows that guess's probability, and top-k still lists it.
A checkpoint may store ``thresholds: {head: value}`` (none written by training yet); the command line wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mmbehave.core.errors import CheckpointError, ConfigError

HEADS = ("species", "behavior")
UNCERTAIN = "uncertain"
EXAMPLE = "e.g. threshold=0.6 or threshold={species:0.6,behavior:0.4}"


def thresholds_from_option(value: Any) -> dict[str, float]:
    """The ``threshold=`` option as {head: threshold}; only the heads it names. Raises ConfigError."""
    if value is None:
        return {}
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        unknown = [str(head) for head in value if head not in HEADS]
        if unknown:
            raise ConfigError(f"threshold.{unknown[0]}: no such head; the heads are {', '.join(HEADS)} ({EXAMPLE}).")
        return {head: _probability(f"threshold.{head}", limit) for head, limit in value.items() if limit is not None}
    limit = _probability("threshold", value)
    return dict.fromkeys(HEADS, limit)


def checkpoint_thresholds(checkpoint: Mapping[str, Any], path: Path) -> dict[str, float]:
    """The thresholds a checkpoint stores (``thresholds: {head: value}``), or {} when it stores none."""
    stored = checkpoint.get("thresholds")
    if stored is None:
        return {}
    try:
        return thresholds_from_option(stored)
    except ConfigError as error:
        raise CheckpointError(f"{path}: its stored thresholds are unusable ({error}); pass threshold= to override "
                              "them.") from error


def label_or_uncertain(name: str, probability: float, threshold: float | None) -> str:
    """``name``, or ``uncertain`` when its probability is below the head's threshold."""
    return UNCERTAIN if threshold is not None and probability < threshold else name


def _probability(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{key}={value}: must be a probability between 0 and 1 (a top probability below it "
                          f"makes the label '{UNCERTAIN}'), or null for none; {EXAMPLE}.")
    return float(value)
