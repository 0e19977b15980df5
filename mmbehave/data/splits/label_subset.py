"""A stratified, seeded share of the training labels: how label efficiency is measured.

    data.label_fraction=0.1     about 10% of each class's training clips (at least one unit per class)
    data.labels_per_class=5     at least 5 training clips of each class
      ─► units (the clips of one trigger event, ``data.label_unit``: never split, they are near-duplicates)
      ─► for each (head, class), rarest first: the class's units in a seeded order, added until the class has
         its share; a unit already taken for a rarer class counts for every class it holds
      ─► the training table, those units' rows in their original order

Only the training split shrinks: validation and test stay whole, so a score at 10% and at 100% is measured on
the same clips. Class lists come from every split before this runs, so the model's outputs do not change with
the fraction. The same seed and table give the same subset, whatever the training seed (``data.label_seed``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmbehave.core.errors import ConfigError
from mmbehave.domain.heads import HeadSpec

# columns that name a trigger event or sequence in camera-trap tables, first match wins
EVENT_COLUMNS = ("event_id", "eventID", "sequence_id", "seq_id")


@dataclass(frozen=True)
class LabelShare:
    fraction: float | None = None       # data.label_fraction: (0, 1]
    per_class: int | None = None        # data.labels_per_class: >= 1
    unit: str | None = None             # data.label_unit: a column kept whole (null: an event column, else each clip)
    seed: int = 0                       # data.label_seed

    @property
    def active(self) -> bool:
        return self.fraction is not None or self.per_class is not None

    def describe(self) -> str:
        return (f"data.label_fraction={self.fraction}" if self.fraction is not None
                else f"data.labels_per_class={self.per_class}")

    @classmethod
    def from_config(cls, container: dict) -> LabelShare:
        fraction, per_class = container.get("label_fraction"), container.get("labels_per_class")
        if fraction is not None and per_class is not None:
            raise ConfigError("data.label_fraction and data.labels_per_class are both set: give one of them (the "
                              "other null).")
        if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < float(fraction) <= 1):
            raise ConfigError(f"data.label_fraction={fraction}: give a share of the training labels in (0, 1], "
                              "e.g. 0.1, or null for all of them.")
        if per_class is not None and not (isinstance(per_class, int) and per_class >= 1):
            raise ConfigError(f"data.labels_per_class={per_class}: give a whole number of clips >= 1, or null.")
        return cls(None if fraction is None else float(fraction), per_class, container.get("label_unit"),
                   int(container.get("label_seed") or 0))


def unit_column(table: pd.DataFrame, share: LabelShare, where: str) -> str | None:
    if share.unit is None:
        return next((column for column in EVENT_COLUMNS if column in table.columns), None)
    if share.unit not in table.columns:
        raise ConfigError(f"data.label_unit={share.unit}: {where} has no such column (it has "
                          f"{', '.join(table.columns)}); name the column whose clips go together, or null.")
    return share.unit


def label_subset(table: pd.DataFrame, heads: tuple[HeadSpec, ...], share: LabelShare, where: str) -> pd.DataFrame:
    """The rows of ``table`` (a training split) that ``share`` keeps, in their order (see the module docstring)."""
    if not share.active:
        return table
    column = unit_column(table, share, where)
    units = table[column].astype(str).to_numpy() if column else table["clip_id"].astype(str).to_numpy()
    rng = np.random.default_rng(share.seed)
    taken: set[str] = set()
    for head, label in _classes_rarest_first(table, heads):
        rows = table[head.column].astype(str).to_numpy() == label
        wanted = _wanted(int(rows.sum()), share)
        candidates = list(dict.fromkeys(units[rows]))
        rng.shuffle(candidates)
        have = int(np.isin(units[rows], list(taken)).sum())
        for unit in candidates:
            if have >= wanted:
                break
            if unit not in taken:
                taken.add(unit)
                have += int((units[rows] == unit).sum())
    return table[np.isin(units, list(taken))]


def _wanted(count: int, share: LabelShare) -> int:
    if share.per_class is not None:
        return min(count, share.per_class)
    return max(1, int(round(share.fraction * count)))


def _classes_rarest_first(table: pd.DataFrame, heads: tuple[HeadSpec, ...]) -> list[tuple[HeadSpec, str]]:
    """Every (single-label head, class) of the table, the rarest first so that its few units are picked before
    a common class's picks could make them unnecessary; ties in a stable order."""
    pairs = []
    for head in heads:
        if head.multi:  # a multi-label column is not one class per clip: its labels come with the clips picked
            continue
        counts = table[head.column].astype(str).value_counts()
        pairs += [(int(count), head.name, label, head) for label, count in counts.items() if label.strip()]
    return [(head, label) for _, _, label, head in sorted(pairs, key=lambda p: (p[0], p[1], p[2]))]
