"""Splits by site: all clips of one group (a camera deployment, or a location) go to the same split, so the
test split measures how the model does at places it never saw.

    assign_groups({"cam-1": 40, "cam-2": 12, ...}, SplitRule(fractions={"train": .7, "val": .15, "test": .15}))
        -> {"cam-1": "train", "cam-2": "test", ...}

Groups named in ``assign`` go where they are told. The others are shuffled with ``seed`` (sorted first, so the
order of the input never matters) and dealt out one by one, each to the split furthest below its share of
clips; while there are no more groups left than splits still empty, those splits get them first. Of 64 such
shuffled deals the one that leaves the fewest splits empty and comes closest to the shares wins (the first
such). Same groups, sizes and seed: same splits.

``deal_groups`` is public because ``group_split`` starts its class-aware search (``python -m mmbehave.split``)
from such deals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from mmbehave.core.errors import ConfigError
from mmbehave.data.layout import SPLITS

GROUP_COLUMNS = ("deploymentID", "locationID")


@dataclass(frozen=True)
class SplitRule:
    by: str = "deploymentID"                                    # deploymentID | locationID
    fractions: dict[str, float] = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    seed: int = 0
    assign: dict[str, str] = field(default_factory=dict)        # group -> split, fixed

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SplitRule:
        """From the ``split`` config keys; a key left out takes the default above."""
        default = cls()
        by = str(cfg.get("by", default.by))
        if by not in GROUP_COLUMNS:
            raise ConfigError(f"split.by={by}: use deploymentID or locationID.")
        given = dict(cfg.get("fractions") or default.fractions)
        unknown = sorted(set(given) - set(SPLITS))
        if unknown:
            raise ConfigError(f"split.fractions has {', '.join(unknown)}; the splits are {', '.join(SPLITS)}.")
        try:
            fractions = {split: float(given.get(split, 0.0)) for split in SPLITS}
        except (TypeError, ValueError) as error:
            raise ConfigError(f"split.fractions must be numbers, e.g. {{train: 0.7, val: 0.15, test: 0.15}} ({error}).")
        if min(fractions.values()) < 0 or sum(fractions.values()) <= 0:
            raise ConfigError(f"split.fractions={given}: shares must be >= 0 and not all 0.")
        assign = {str(group): str(split) for group, split in dict(cfg.get("assign") or {}).items()}
        wrong = {group: split for group, split in assign.items() if split not in SPLITS}
        if wrong:
            group, split = next(iter(wrong.items()))
            raise ConfigError(f"split.assign.{group}={split}: a group goes to one of {', '.join(SPLITS)}.")
        return cls(by, fractions, int(cfg.get("seed", 0)), assign)


def assign_groups(sizes: Mapping[str, int], rule: SplitRule, trials: int = 64) -> dict[str, str]:
    """Each group -> its split; ``sizes`` counts the clips of each group. The best of ``trials`` seeded deals."""
    fixed = {group: rule.assign[group] for group in sizes if group in rule.assign}
    free = sorted(group for group in sizes if group not in fixed)
    rng = np.random.default_rng(rule.seed)
    best, best_score = fixed, None
    for _ in range(trials if free else 1):
        order = [free[i] for i in rng.permutation(len(free))]
        result = deal_groups(order, sizes, rule, fixed)
        score = _score(result, sizes, rule)
        if best_score is None or score < best_score:
            best, best_score = result, score
    return best


def split_targets(sizes: Mapping[str, int], rule: SplitRule) -> dict[str, float]:
    total, weight = sum(sizes.values()), sum(rule.fractions.values())
    return {split: rule.fractions[split] / weight * total for split in SPLITS}


def deal_groups(order: list[str], sizes: Mapping[str, int], rule: SplitRule, fixed: dict[str, str]) -> dict[str, str]:
    """Deal ``order`` out: each group to the split furthest below its target; empty splits first near the end."""
    target = split_targets(sizes, rule)
    result = dict(fixed)
    clips = {split: sum(sizes[g] for g, s in result.items() if s == split) for split in SPLITS}
    groups = {split: sum(1 for s in result.values() if s == split) for split in SPLITS}
    wanted = [split for split in SPLITS if rule.fractions[split] > 0]
    for position, group in enumerate(order):
        empty = [split for split in wanted if groups[split] == 0]
        candidates = empty if empty and len(order) - position <= len(empty) else wanted
        split = max(candidates, key=lambda s: (target[s] - clips[s], -SPLITS.index(s)))
        result[group] = split
        clips[split] += sizes[group]
        groups[split] += 1
    return result


def _score(result: dict[str, str], sizes: Mapping[str, int], rule: SplitRule) -> tuple[int, float]:
    """(splits with a share left empty, clips away from the targets): lower is better."""
    target = split_targets(sizes, rule)
    clips = {split: sum(sizes[g] for g, s in result.items() if s == split) for split in SPLITS}
    empty = sum(1 for split in SPLITS if rule.fractions[split] > 0 and not clips[split])
    return empty, sum(abs(clips[split] - target[split]) for split in SPLITS)
