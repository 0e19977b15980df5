"""Cross-validation folds grouped by site (camera, event): ``python -m mmbehave.split ... folds=5`` (or
``folds=loo``, one group held out at a time).

Each fold's test set is its held-out groups; the other groups are split into train and val by the shares
``fractions`` gives them (its test share is the fold's, so it is not used), with the same class-covering search
as a single split. The folds themselves are dealt by that search too, so every class is in as many folds'
test sets as its groups allow. Written:

    <output_dir>/folds.csv                 clip_id, group, fold: the fold whose test set holds each clip
    <output_dir>/fold_<i>/train.csv, val.csv, test.csv, splits.csv, split_summary.csv, unsplittable_classes.csv
                                    each fold as ``python -m mmbehave.split`` writes one split
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import DataError, InputError
from mmbehave.domain.folds import FOLDS_NAME, fold_names, short_list
from mmbehave.data.splits.group_split import (
    GroupCounts,
    assign_covering,
    missing_classes,
)
from mmbehave.data.splits.maker import (
    SplitResult,
    has_header,
    read_label_table,
    refuse_overwrite,
    row_groups,
    row_labels,
    write_outputs,
)
from mmbehave.data.splits.options import SplitOptions


@dataclass
class FoldsResult:
    options: SplitOptions
    fold_of_group: dict[str, str]     # group -> "fold_<i>"
    folds: list[SplitResult]          # each fold as one split (its output_dir= is <output_dir>/fold_<i>)

    @property
    def names(self) -> list[str]:
        return [fold.options.output_dir.name for fold in self.folds]


def make_folds(options: SplitOptions, table: pd.DataFrame | None = None) -> FoldsResult:
    """Every fold's split, checked and assigned before anything is written; from ``options.labels``, or from
    ``table`` made in memory (``options.labels`` then only names it in messages)."""
    _refuse_foreign_folds(options)
    table = read_label_table(options, table)
    groups, labels = row_groups(table, options), row_labels(table, options)
    counts = GroupCounts.build(groups, labels, options.heads)
    count = len(counts.groups) if options.folds == "loo" else int(options.folds)
    _check_enough_groups(options, counts, count)
    names = fold_names(count)
    if options.folds == "loo":
        fold_of_group = dict(zip(counts.groups, names))
    else:
        fold_of_group = assign_covering(counts, {name: 1.0 / count for name in names}, options.seed)
    rest_shares = {"train": options.fractions["train"], "val": options.fractions["val"], "test": 0.0}
    train_of_rest = rest_shares["train"] / (rest_shares["train"] + rest_shares["val"])
    folds = []
    for name in names:
        held_out = {group for group, fold in fold_of_group.items() if fold == name}
        keep = [group not in held_out for group in groups]
        rest = GroupCounts.build([g for g, k in zip(groups, keep) if k], [l for l, k in zip(labels, keep) if k],
                                 options.heads)
        _check_rest(options, name, held_out, rest)
        assignment = assign_covering(rest, rest_shares, options.seed) | {group: "test" for group in held_out}
        test_share = 1 - sum(keep) / len(keep)
        shares = {"train": train_of_rest * (1 - test_share), "val": (1 - train_of_rest) * (1 - test_share),
                  "test": test_share}
        fold_options = dataclasses.replace(options, output_dir=options.output_dir / name, fractions=shares, folds=None)
        refuse_overwrite(fold_options)
        missing = missing_classes(counts, assignment, shares, options.group_by)
        folds.append(SplitResult(fold_options, table, groups, labels, assignment, missing))
    return FoldsResult(options, fold_of_group, folds)


def _refuse_foreign_folds(options: SplitOptions) -> None:
    out = options.output_dir
    if out.exists() and not out.is_dir():
        raise InputError(f"output_dir={out} is a file; give the folder to write {FOLDS_NAME} and a folder per fold into.")
    if (out / FOLDS_NAME).exists():
        if not has_header(out / FOLDS_NAME, ["clip_id", "group", "fold"]):
            raise InputError(f"output_dir={out} holds a {FOLDS_NAME} an earlier split did not write; choose another output_dir=.")
        if not options.overwrite:
            raise InputError(f"output_dir={out} already holds {FOLDS_NAME}; pass overwrite=true to replace the folds, or "
                             "choose another output_dir=.")


def _check_enough_groups(options: SplitOptions, counts: GroupCounts, count: int) -> None:
    if len(counts.groups) < max(count, 2):
        raise DataError(f"{options.labels}: {len(counts.groups)} {options.group_by} group(s) for folds={options.folds}: "
                        "each fold holds out at least one whole group and trains on another. Use fewer folds, a "
                        "finer group_by, or more data.")


def _check_rest(options: SplitOptions, name: str, held_out: set[str], rest: GroupCounts) -> None:
    needed = 2 if options.fractions["val"] > 0 else 1
    if len(rest.groups) < needed:
        raise DataError(f"{options.labels}: {name} holds out {', '.join(sorted(held_out))}, which leaves "
                        f"{len(rest.groups)} {options.group_by} group(s) for train and val. Use fewer folds, "
                        "'fractions={train:1,val:0,test:0}' (no val set), or more groups.")


def write_folds(result: FoldsResult) -> list[Path]:
    """Each fold's files (as a split writes them), then folds.csv, which marks the folder as the folds' own."""
    written = []
    for fold in result.folds:
        fold.options.output_dir.mkdir(parents=True, exist_ok=True)
        written += write_outputs(fold)
    first = result.folds[0]
    frame = pd.DataFrame({"clip_id": first.table["clip_id"].str.strip(), "group": first.groups,
                          "fold": [result.fold_of_group[group] for group in first.groups]})
    with atomic_path(result.options.output_dir / FOLDS_NAME) as tmp:
        frame.to_csv(tmp, index=False)
    return [*written, result.options.output_dir / FOLDS_NAME]


def folds_summary_lines(result: FoldsResult) -> list[str]:
    """One row per fold: its held-out groups, rows per split and the classes missing from a split."""
    options = result.options
    lines = [f"{len(result.folds)} folds of {len(result.folds[0].table)} rows by {options.group_by} "
             f"(seed {options.seed}) in {options.output_dir}:", "",
             f"| fold | test {options.group_by} | train rows | val rows | test rows | classes not in every split |",
             "|---|---|---|---|---|---|"]
    for fold in result.folds:
        held_out = sorted(g for g, f in result.fold_of_group.items() if f == fold.options.output_dir.name)
        rows = pd.Series(fold.split_of_rows()).value_counts()
        missing = ", ".join(f"{m.head}: {m.label} ({'/'.join(m.missing_from)})" for m in fold.missing) or "none"
        lines.append(f"| {fold.options.output_dir.name} | {short_list(held_out)} | {rows.get('train', 0)} | "
                     f"{rows.get('val', 0)} | {rows.get('test', 0)} | {missing} |")
    lines += ["", "Each fold's reasons: <output_dir>/fold_<i>/unsplittable_classes.csv."]
    return lines
