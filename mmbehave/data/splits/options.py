"""The keys of ``python -m mmbehave.split`` (conf/split.yaml), checked before any file is read, so a wrong
value ends in one line that names the key and the fix, and nothing is written."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from mmbehave.core.errors import ConfigError, InputError
from mmbehave.core.settings import typed_view
from mmbehave.data.layout import SPLITS

EXAMPLE_FRACTIONS = "'fractions={train:0.7,val:0.15,test:0.15}'"  # quoted: bash would expand {a,b}


@dataclass(frozen=True)
class SplitOptions:
    labels: Path | None = None
    output_dir: Path | None = None
    group_by: str = ""
    fractions: Any = dataclasses.field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    seed: int = 0
    heads: tuple[str, ...] = ()
    label_separator: str = ""            # "" : a cell is one label (conf/split.yaml: "|")
    empty_group: Literal["error", "own"] = "error"  # a row without a group: refused, or a group of its own
    overwrite: bool = False
    folds: Any = None                    # k (>= 2) or "loo": cross-validation folds instead of one split

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SplitOptions:
        keys = [f.name for f in dataclasses.fields(cls)]
        # An empty or null key is a key not given: the defaults and the "is required" messages below apply.
        given = {key: cfg[key] for key in keys if key in cfg and cfg[key] is not None
                 and (key == "label_separator" or str(cfg[key]).strip() != "")}
        try:
            options = typed_view(cls, given, "", defaults=True)
        except ConfigError as error:
            if str(error).startswith("seed="):
                raise ConfigError(f"seed={cfg.get('seed')}: give a whole number, e.g. seed=0.") from None
            raise
        for key, what in (("labels", "the label table to split (CSV, or TSV named .tsv)"),
                          ("output_dir", "the folder for train.csv, val.csv, test.csv and the split reports")):
            if getattr(options, key) is None:
                raise InputError(f"{key}= is required: {what}.")
        group_by = options.group_by.strip()
        if not group_by:
            raise ConfigError("group_by= is required: the column whose values stay together (site, camera, event, ...).")
        heads = tuple(head.strip() for head in options.heads)
        if not heads or not all(heads):
            raise ConfigError("heads= names the label columns to cover in every split, e.g. heads=[species,behavior].")
        if group_by in heads:
            raise ConfigError(f"group_by={group_by} is also in heads={list(heads)}; a group column cannot be a label.")
        return dataclasses.replace(options, group_by=group_by, heads=heads, fractions=parse_fractions(options.fractions),
                                   folds=parse_folds(options.folds))


def parse_folds(given: Any) -> int | str | None:
    """None (one split), a whole number of folds >= 2, or "loo" (each group held out once)."""
    if given is None or str(given).strip().lower() in ("", "none", "null"):
        return None
    if str(given).strip().lower() == "loo":
        return "loo"
    try:
        folds = int(str(given).strip())
    except ValueError:
        folds = 0
    if folds < 2:
        raise ConfigError(f"folds={given}: give a whole number of folds of at least 2 (folds=5), or folds=loo to "
                          "hold out one group at a time.")
    return folds


def parse_fractions(given: Any) -> dict[str, float]:
    """``{train: .., val: .., test: ..}``: shares >= 0 that sum to 1, train's > 0 (a split not named: 0)."""
    if isinstance(given, Mapping):
        unknown = sorted(set(map(str, given)) - set(SPLITS))
        if unknown:
            raise ConfigError(f"fractions has {', '.join(unknown)}; the splits are {', '.join(SPLITS)}.")
        shown, values = dict(given), [given.get(split, 0) for split in SPLITS]
    elif isinstance(given, Sequence) and not isinstance(given, str):
        raise ConfigError(f"fractions={list(given)}: a list is the old spelling; name the splits, e.g. "
                          f"{EXAMPLE_FRACTIONS} (as import_camtrap_dp's split.fractions).")
    else:
        shown = list(given) if isinstance(given, Sequence) and not isinstance(given, str) else given
        raise ConfigError(f"fractions={shown}: give a share for each split, e.g. {EXAMPLE_FRACTIONS}.")
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
