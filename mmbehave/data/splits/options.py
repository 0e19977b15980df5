"""The keys of ``python -m mmbehave.split`` (conf/split.yaml), checked before any file is read, so a wrong
value ends in one line that names the key and the fix, and nothing is written."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmbehave.core.errors import ConfigError, InputError
from mmbehave.data.layout import SPLITS

EMPTY_GROUP_CHOICES = ("error", "own")
EXAMPLE_FRACTIONS = "fractions=[0.7,0.15,0.15]"


@dataclass(frozen=True)
class SplitOptions:
    labels: Path
    out: Path
    group_by: str
    fractions: dict[str, float]     # train / val / test -> share of rows; a 0 share gets no rows and no table
    seed: int
    heads: tuple[str, ...]
    label_separator: str            # "" : a cell is one label
    empty_group: str                # error | own (a row without a group is a group of its own)
    overwrite: bool

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SplitOptions:
        labels = _required_path(cfg, "labels", "the label table to split (CSV, or TSV named .tsv)")
        out = _required_path(cfg, "out", "the folder for train.csv, val.csv, test.csv and the split reports")
        group_by = str(cfg.get("group_by") or "").strip()
        if not group_by:
            raise ConfigError("group_by= is required: the column whose values stay together (site, camera, event, ...).")
        heads = cfg.get("heads") or ()
        heads = (heads,) if isinstance(heads, str) else tuple(str(head).strip() for head in heads)
        if not heads or not all(heads):
            raise ConfigError("heads= names the label columns to cover in every split, e.g. heads=[species,behavior].")
        if group_by in heads:
            raise ConfigError(f"group_by={group_by} is also in heads={list(heads)}; a group column cannot be a label.")
        empty_group = str(cfg.get("empty_group", "error"))
        if empty_group not in EMPTY_GROUP_CHOICES:
            raise ConfigError(f"empty_group={empty_group}: use error or own.")
        try:
            seed = int(cfg.get("seed", 0))
        except (TypeError, ValueError):
            raise ConfigError(f"seed={cfg.get('seed')}: give a whole number, e.g. seed=0.") from None
        return cls(labels, out, group_by, parse_fractions(cfg.get("fractions")), seed, heads,
                   str(cfg.get("label_separator") or ""), empty_group, bool(cfg.get("overwrite", False)))


def _required_path(cfg: Mapping[str, Any], key: str, what: str) -> Path:
    value = str(cfg.get(key) or "").strip()
    if not value:
        raise InputError(f"{key}= is required: {what}.")
    return Path(value).expanduser()


def parse_fractions(given: Any) -> dict[str, float]:
    """``[train, val, test]`` (or ``{train: .., val: .., test: ..}``): three shares >= 0 that sum to 1, train's > 0."""
    if isinstance(given, Mapping):
        unknown = sorted(set(map(str, given)) - set(SPLITS))
        if unknown:
            raise ConfigError(f"fractions has {', '.join(unknown)}; the splits are {', '.join(SPLITS)}.")
        shown, values = dict(given), [given.get(split, 0) for split in SPLITS]
    elif isinstance(given, Sequence) and not isinstance(given, str) and len(given) == len(SPLITS):
        shown = values = list(given)
    else:
        shown = list(given) if isinstance(given, Sequence) and not isinstance(given, str) else given
        raise ConfigError(f"fractions={shown}: give three shares for train, val and test, e.g. {EXAMPLE_FRACTIONS}.")
    try:
        shares = [float(value) for value in values]
    except (TypeError, ValueError):
        raise ConfigError(f"fractions={shown}: the shares must be numbers, e.g. {EXAMPLE_FRACTIONS}.") from None
    if not all(math.isfinite(share) for share in shares):
        raise ConfigError(f"fractions={shown}: every share must be a finite number, e.g. {EXAMPLE_FRACTIONS}.")
    if min(shares) < 0:
        raise ConfigError(f"fractions={shown}: a share cannot be negative.")
    if abs(sum(shares) - 1) > 1e-6:
        raise ConfigError(f"fractions={shown} sum to {sum(shares):g}; they must sum to 1, e.g. {EXAMPLE_FRACTIONS}.")
    if shares[0] == 0:
        raise ConfigError(f"fractions={shown}: train needs a share above 0.")
    return dict(zip(SPLITS, shares))
