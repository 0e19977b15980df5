"""Whole groups (sites, cameras, events) to splits, so that every class of every head lands in every split
wherever the groups allow it, and the splits come close to their shares of rows.

    groups = GroupCounts.build(group_of_row, labels_of_row)
    assignment = assign_covering(groups, {"train": .7, "val": .15, "test": .15}, seed=0)  # group -> split
    missing_classes(groups, assignment, fractions, noun="site")   # what is still not in every split, and why

A deal by size alone balances rows only, so a rare species seen at three sites can end up with all three in
train, and val/test then never test it. Seeded deals (each group to the split furthest below its share; while
no more groups are left than splits still empty, those get them) are only the starting points here; a local
search (moving one group, or swapping two) then improves, in this order:
  1. no split with a share left empty;
  2. every class in train (a class only val or test has cannot be learned, and training refuses it);
  3. as many (class, split) cells filled as the groups allow;
  4. rows as close to the shares as whole groups allow.
The best of several seeded starts wins (the first on a tie), so same table and seed: same splits. Groups
``fixed`` to a split (the Camtrap DP importer's ``split.assign``) stay there. This is the one group-to-split
algorithm: ``python -m mmbehave.split``, the field-like benchmark and the Camtrap DP importer all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from mmbehave.data.layout import SPLITS

TRIALS = 16                 # seeded starting deals; each is improved, the best kept
MAX_PASSES = 50             # improvement passes over the groups; each pass must improve, so this only caps
ALL_PAIRS_UP_TO = 200       # groups up to which every pair is tried as a swap; above it, SAMPLED_PAIRS random ones
SAMPLED_PAIRS = 20_000
NAMES_SHOWN = 5             # groups named in a reason before "..."

Label = tuple[str, str]     # (head, class), e.g. ("species", "wolf")
Score = tuple[int, int, int, float]  # (empty splits, classes not in train, empty (class, split) cells, rows off target)


@dataclass(frozen=True)
class GroupCounts:
    """Rows and per-label rows of each group: all the search needs to know about the table."""

    groups: list[str]       # sorted, so the input's row order never matters
    rows: np.ndarray        # (groups,) rows in each group
    labels: list[Label]     # sorted by head (in the order given) then class
    counts: np.ndarray      # (groups, labels) rows of each group carrying each label

    @classmethod
    def build(cls, group_of_row: Sequence[str], labels_of_row: Sequence[Sequence[Label]],
              heads: Sequence[str]) -> GroupCounts:
        """A row with several labels of one head counts once for each of them."""
        groups = sorted(set(group_of_row))
        head_order = {head: i for i, head in enumerate(heads)}
        labels = sorted({label for row in labels_of_row for label in row}, key=lambda hl: (head_order[hl[0]], hl[1]))
        group_index = {group: i for i, group in enumerate(groups)}
        label_index = {label: i for i, label in enumerate(labels)}
        rows = np.zeros(len(groups), dtype=np.int64)
        counts = np.zeros((len(groups), len(labels)), dtype=np.int64)
        for group, row_labels in zip(group_of_row, labels_of_row):
            g = group_index[group]
            rows[g] += 1
            for label in set(row_labels):
                counts[g, label_index[label]] += 1
        return cls(groups, rows, labels, counts)

    def holders(self, label: int) -> list[str]:
        return [self.groups[g] for g in np.flatnonzero(self.counts[:, label])]


@dataclass(frozen=True)
class MissingClass:
    """A class that is not in every split with a share, and why."""

    head: str
    label: str
    clips: int
    groups: list[str]
    missing_from: list[str]
    reason: str


def parts_of(fractions: Mapping[str, float]) -> tuple[str, ...]:
    """The parts groups are dealt to: train, val, test (in that order), or any names given (a
    cross-validation's folds)."""
    return SPLITS if set(fractions) == set(SPLITS) else tuple(fractions)


def active_splits(fractions: Mapping[str, float]) -> list[str]:
    """The splits that get rows: those with a share above 0."""
    return [split for split in parts_of(fractions) if fractions[split] > 0]


def assign_covering(groups: GroupCounts, fractions: Mapping[str, float], seed: int, trials: int = TRIALS,
                    fixed: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each group -> its split (``fixed`` ones where they are told). With fewer groups than active splits some
    split stays empty (``python -m mmbehave.split`` refuses that before calling)."""
    fixed = {group: split for group, split in (fixed or {}).items() if group in set(groups.groups)}
    parts = parts_of(fractions)
    rng = np.random.default_rng(seed)
    sizes = {group: int(n) for group, n in zip(groups.groups, groups.rows)}
    target = split_targets(sizes, fractions)
    free = [g for g in groups.groups if g not in fixed]
    movable = np.array([g not in fixed for g in groups.groups])
    best: _Search | None = None
    for _ in range(trials if free else 1):
        order = [free[i] for i in rng.permutation(len(free))]
        dealt = deal_groups(order, sizes, fractions, fixed)
        search = _Search(groups, [parts.index(dealt[g]) for g in groups.groups], fractions, target, movable)
        search.improve(rng, swaps=len(groups.groups) <= ALL_PAIRS_UP_TO)
        if best is None or _better(search.current, best.current):
            best = search
    best.improve(rng, swaps=True)  # large tables: only the winner gets the (sampled) swaps
    return {group: parts[s] for group, s in zip(groups.groups, best.split_of)}


def split_targets(sizes: Mapping[str, int], fractions: Mapping[str, float]) -> dict[str, float]:
    """Rows each split should get: its share (normalised over the shares given) of all rows."""
    total, weight = sum(sizes.values()), sum(fractions.values())
    return {split: fractions[split] / weight * total for split in parts_of(fractions)}


def deal_groups(order: list[str], sizes: Mapping[str, int], fractions: Mapping[str, float],
                fixed: Mapping[str, str]) -> dict[str, str]:
    """Deal ``order`` out: each group to the split furthest below its target; empty splits first near the end."""
    target = split_targets(sizes, fractions)
    parts = parts_of(fractions)
    result = dict(fixed)
    rows = {split: sum(sizes[g] for g, s in result.items() if s == split) for split in parts}
    groups = {split: sum(1 for s in result.values() if s == split) for split in parts}
    wanted = active_splits(fractions)
    for position, group in enumerate(order):
        empty = [split for split in wanted if groups[split] == 0]
        candidates = empty if empty and len(order) - position <= len(empty) else wanted
        split = max(candidates, key=lambda s: (target[s] - rows[s], -parts.index(s)))
        result[group] = split
        rows[split] += sizes[group]
        groups[split] += 1
    return result


def missing_classes(groups: GroupCounts, assignment: Mapping[str, str], fractions: Mapping[str, float],
                    noun: str) -> list[MissingClass]:
    """Each (head, class) absent from an active split, with the reason in words (``noun`` names a group)."""
    active, parts = active_splits(fractions), parts_of(fractions)
    split_of = np.array([parts.index(assignment[g]) for g in groups.groups])
    missing = []
    for index, (head, label) in enumerate(groups.labels):
        present = {parts[s] for s in split_of[groups.counts[:, index] > 0]}
        absent = [split for split in active if split not in present]
        if absent:
            holders = groups.holders(index)
            clips = int(groups.counts[:, index].sum())
            missing.append(MissingClass(head, label, clips, holders, absent,
                                        _reason(label, clips, holders, len(active), noun)))
    return missing


def _reason(label: str, clips: int, holders: list[str], splits: int, noun: str) -> str:
    names = ", ".join(holders[:NAMES_SHOWN]) + (", ..." if len(holders) > NAMES_SHOWN else "")
    if len(holders) == 1:
        if clips == 1:
            return f"the only clip of `{label}` comes from {noun} {holders[0]}"
        return f"all {clips} clips of `{label}` come from {noun} {holders[0]}"
    if len(holders) < splits:
        return (f"all {clips} clips of `{label}` come from {len(holders)} {noun} groups ({names}), "
                f"fewer than the {splits} splits")
    # Enough groups, but every way found to spread them leaves another class or a split out.
    return (f"its {clips} clips come from {len(holders)} {noun} groups ({names}), but no grouping found spreads "
            "them over every split without leaving another class out")


def _better(score: Score, than: Score) -> bool:
    """Lower is better, in that order; a float tie is no improvement, so the search stops instead of cycling."""
    if score[:3] != than[:3]:
        return score[:3] < than[:3]
    return score[3] < than[3] - 1e-9


class _Search:
    """One assignment being improved: split totals are kept up to date, so trying a change costs one row."""

    def __init__(self, groups: GroupCounts, split_of: list[int], fractions: Mapping[str, float],
                 target: Mapping[str, float], movable: np.ndarray) -> None:
        self.groups = groups
        self.split_of = np.array(split_of, dtype=np.int64)
        self.movable = movable
        parts = parts_of(fractions)
        # Training needs every class most: with a train part, a class missing there weighs first.
        self.train = parts.index("train") if "train" in parts else None
        self.active = np.array([fractions[split] > 0 for split in parts])
        self.active_index = [s for s in range(len(parts)) if self.active[s]]
        self.target = np.array([target[split] for split in parts], dtype=float)
        self.rows = np.zeros(len(parts), dtype=np.int64)
        self.labels = np.zeros((len(parts), len(groups.labels)), dtype=np.int64)
        for g, s in enumerate(self.split_of):
            self._shift(g, s, +1)
        self.current = self.score()

    def _shift(self, g: int, s: int, sign: int) -> None:
        self.rows[s] += sign * self.groups.rows[g]
        self.labels[s] += sign * self.groups.counts[g]

    def score(self) -> Score:
        empty = int(((self.rows == 0) & self.active).sum())
        not_in_train = int((self.labels[self.train] == 0).sum()) if self.train is not None else 0
        uncovered = int((self.labels[self.active] == 0).sum())
        return empty, not_in_train, uncovered, float(np.abs(self.rows - self.target).sum())

    def _try(self, moves: list[tuple[int, int]]) -> bool:
        """Apply ``moves`` [(group, new split)]; keep them if the score improves, else undo. Whether kept."""
        old = [(g, int(self.split_of[g])) for g, _ in moves]
        for g, s in moves:
            self._shift(g, self.split_of[g], -1)
            self._shift(g, s, +1)
            self.split_of[g] = s
        after = self.score()
        if _better(after, self.current):
            self.current = after
            return True
        for g, s in reversed(old):
            self._shift(g, self.split_of[g], -1)
            self._shift(g, s, +1)
            self.split_of[g] = s
        return False

    def improve(self, rng: np.random.Generator, swaps: bool) -> None:
        """First-improvement hill climbing: move one group, then swap two, until a pass changes nothing."""
        for _ in range(MAX_PASSES):
            changed = self._move_pass(rng)
            if swaps:
                changed = self._swap_pass(rng) or changed
            if not changed:
                return

    def _move_pass(self, rng: np.random.Generator) -> bool:
        changed = False
        for g in rng.permutation(len(self.split_of)):
            if not self.movable[g]:
                continue
            for s in self.active_index:
                if s != self.split_of[g] and self._try([(g, s)]):
                    changed = True
                    break
        return changed

    def _swap_pass(self, rng: np.random.Generator) -> bool:
        count = len(self.split_of)
        if count <= ALL_PAIRS_UP_TO:
            first, second = np.triu_indices(count, k=1)
            order = rng.permutation(len(first))
            pairs = zip(first[order], second[order])
        else:
            pairs = zip(rng.integers(0, count, SAMPLED_PAIRS), rng.integers(0, count, SAMPLED_PAIRS))
        changed = False
        for g, h in pairs:
            a, b = int(self.split_of[g]), int(self.split_of[h])
            if a != b and self.movable[g] and self.movable[h] and self._try([(g, b), (h, a)]):
                changed = True
        return changed
