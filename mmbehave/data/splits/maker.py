"""One label table -> train / val / test tables that keep every group (site, camera, event) in one split
(``python -m mmbehave.split``). Only the table is read: no media are needed.

    <output_dir>/train.csv, val.csv, test.csv   the input's rows, every column, ready for <root>/raw/metadata/
    <output_dir>/splits.csv                     clip_id, group, split: one row per clip
    <output_dir>/split_summary.csv              split, kind (rows | groups | label), head, class, count
    <output_dir>/unsplittable_classes.csv       head, class, clips, groups, missing_from, reason: what is not in every
                                         split, and why (empty when every class is)

Which group goes where: ``group_split``. Everything is checked before the first file is written, so a
mistake leaves ``output_dir`` as it was; each file is written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import DataError, InputError
from mmbehave.core.guards import resolved, same_file
from mmbehave.data.layout import SPLITS
from mmbehave.data.metadata import csv_row
from mmbehave.data.splits.group_split import (
    GroupCounts,
    Label,
    MissingClass,
    active_splits,
    assign_covering,
    missing_classes,
)
from mmbehave.data.splits.options import SplitOptions

SPLITS_NAME, SUMMARY_NAME, MISSING_NAME = "splits.csv", "split_summary.csv", "unsplittable_classes.csv"
OUTPUT_NAMES = (*(f"{split}.csv" for split in SPLITS), SPLITS_NAME, SUMMARY_NAME, MISSING_NAME)
ROWS_SHOWN = 5              # rows named in an error before "(+N more)"
FAR_FROM_SHARE = 0.10       # a split this far from its share (of all rows) gets a note under the summary


@dataclass
class SplitResult:
    options: SplitOptions
    table: pd.DataFrame             # the input, as read
    groups: list[str]               # each row's group
    labels: list[list[Label]]       # each row's labels
    assignment: dict[str, str]      # group -> split
    missing: list[MissingClass]

    def split_of_rows(self) -> list[str]:
        return [self.assignment[group] for group in self.groups]

    def tables(self) -> dict[str, pd.DataFrame]:
        """The input's rows of each split that has a share, in the input's order."""
        split_of = pd.Series(self.split_of_rows(), index=self.table.index)
        return {split: self.table[split_of == split] for split in active_splits(self.options.fractions)}


def make_splits(cfg: Mapping[str, Any]) -> SplitResult:
    """The command's work up to writing: options, table, groups and labels checked, groups assigned."""
    return split_table(SplitOptions.from_config(cfg))


def split_table(options: SplitOptions) -> SplitResult:
    """``make_splits`` for options already read (the command reads them once to choose split or folds)."""
    refuse_overwrite(options)
    table = read_label_table(options)
    groups, labels = row_groups(table, options), row_labels(table, options)
    counts = GroupCounts.build(groups, labels, options.heads)
    _check_enough_groups(options, counts)
    assignment = assign_covering(counts, options.fractions, options.seed)
    missing = missing_classes(counts, assignment, options.fractions, options.group_by)
    return SplitResult(options, table, groups, labels, assignment, missing)


def refuse_overwrite(options: SplitOptions) -> None:
    """output_dir= must be a folder whose tables, if any, an earlier split wrote (``overwrite=true`` replaces only
    those), and none of them the table being split."""
    out = options.output_dir
    if out.exists() and not out.is_dir():
        raise InputError(f"output_dir={out} is a file; give the folder to write train.csv, val.csv, test.csv and the "
                         "split reports into.")
    for name in OUTPUT_NAMES:
        if resolved(out / name) == resolved(options.labels) or same_file(out / name, options.labels):
            raise InputError(f"labels={options.labels} is the {name} this split writes into output_dir={out}, so it would "
                             "replace the table it reads. Choose another output_dir= (or copy the table elsewhere first).")
    there = [name for name in OUTPUT_NAMES if (out / name).exists()]
    if there and not options.overwrite:
        raise InputError(f"output_dir={out} already holds {', '.join(there)}; pass overwrite=true to replace "
                         "them, or choose another output_dir=.")
    if there and not has_header(out / SPLITS_NAME, ["clip_id", "group", "split"]):
        raise InputError(f"output_dir={out} holds {', '.join(there)}, which an earlier split did not write (no {SPLITS_NAME} "
                         "of its own); overwrite=true replaces only the split's own outputs. Choose another output_dir=.")


def read_table_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"labels={path}: no such file; give the label table to split (CSV, or TSV named .tsv).")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if path.suffix == ".tsv" else ",")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable table ({error}).") from error


def has_header(path: Path, columns: list[str]) -> bool:
    """Whether ``path`` is a table with exactly these columns: how the split command knows its own outputs
    (splits.csv, folds.csv) from files it must not replace."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return False
    return list(header) == columns


def read_label_table(options: SplitOptions, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The table as text (no cell read as a number or NaN), with clip ids present and unique; ``table``, when
    given, is checked the same way instead of reading ``options.labels``."""
    path = options.labels
    if table is None:
        table = read_table_file(path)
    table.columns = [str(column).strip() for column in table.columns]
    wanted = ("clip_id", options.group_by, *options.heads)
    fixes = {"clip_id": "; the table needs one naming each clip",
             options.group_by: " (group_by); set group_by= to the column that names each clip's group"}
    for column in wanted:
        if column not in table.columns:
            fix = fixes.get(column, " (heads); set heads= to the label columns, e.g. heads=[species]")
            raise DataError(f"{path}: no column '{column}'{fix}. Its columns are {', '.join(table.columns)}.")
    if table.empty:
        raise DataError(f"{path}: no rows to split.")
    clip_ids = table["clip_id"].str.strip()
    _refuse_rows(path, clip_ids == "", "have an empty clip_id; give every row one")
    _refuse_rows(path, clip_ids.duplicated(keep=False), "share a clip_id; clip ids must be unique")
    return table


def _refuse_rows(path: Path, bad: pd.Series, what: str) -> None:
    rows = [csv_row(index) for index in bad.index[bad]]
    if rows:
        more = f" (+{len(rows) - ROWS_SHOWN} more)" if len(rows) > ROWS_SHOWN else ""
        raise DataError(f"{path}, row(s) {', '.join(map(str, rows[:ROWS_SHOWN]))}{more}: {what}.")


def row_groups(table: pd.DataFrame, options: SplitOptions) -> list[str]:
    """Each row's group; a row without one is refused, or (empty_group=own) a group of its own."""
    groups = table[options.group_by].str.strip()
    empty = groups == ""
    if options.empty_group == "error":
        _refuse_rows(options.labels, empty, f"empty {options.group_by}; fill it in, or pass empty_group=own to "
                                            "make each such clip a group of its own")
    own = "(no " + options.group_by + ") "
    return [own + clip if blank else group for group, blank, clip in
            zip(groups, empty, table["clip_id"].str.strip())]


def row_labels(table: pd.DataFrame, options: SplitOptions) -> list[list[Label]]:
    """Each row's (head, class) labels: a cell ``walking|vocalizing`` is two; an empty cell is none."""
    labels: list[list[Label]] = [[] for _ in range(len(table))]
    for head in options.heads:
        for row, cell in enumerate(table[head]):
            parts = cell.split(options.label_separator) if options.label_separator else [cell]
            labels[row] += [(head, part.strip()) for part in parts if part.strip()]
    return labels


def _check_enough_groups(options: SplitOptions, counts: GroupCounts) -> None:
    """Each split with a share needs a whole group; say so in one line instead of writing an empty split."""
    wanted = active_splits(options.fractions)
    if len(counts.groups) < len(wanted):
        found = ", ".join(counts.groups)
        raise DataError(f"{options.labels}: {len(counts.rows)} {options.group_by} group(s) ({found}) in "
                        f"{int(counts.rows.sum())} rows for {len(wanted)} splits ({', '.join(wanted)}); each split "
                        f"needs at least one whole group. Use a finer group_by, fewer splits (e.g. "
                        "'fractions={train:0.8,val:0.2,test:0}'), or more data.")


def splits_frame(result: SplitResult) -> pd.DataFrame:
    return pd.DataFrame({"clip_id": result.table["clip_id"].str.strip(), "group": result.groups,
                         "split": result.split_of_rows()})


def summary_frame(result: SplitResult) -> pd.DataFrame:
    """Long table: per split with a share, its rows, its groups, and the rows of each (head, class)."""
    records = []
    split_of = result.split_of_rows()
    for split in active_splits(result.options.fractions):
        rows = [i for i, s in enumerate(split_of) if s == split]
        records.append((split, "rows", "", "", len(rows)))
        records.append((split, "groups", "", "", len({result.groups[i] for i in rows})))
        per_label: dict[Label, int] = {}
        for i in rows:
            for label in set(result.labels[i]):
                per_label[label] = per_label.get(label, 0) + 1
        for head, name in _all_labels(result):
            records.append((split, "label", head, name, per_label.get((head, name), 0)))
    return pd.DataFrame(records, columns=["split", "kind", "head", "class", "count"])


def _all_labels(result: SplitResult) -> list[Label]:
    order = {head: i for i, head in enumerate(result.options.heads)}
    return sorted({label for row in result.labels for label in row}, key=lambda hl: (order[hl[0]], hl[1]))


def missing_frame(result: SplitResult) -> pd.DataFrame:
    return pd.DataFrame([(m.head, m.label, m.clips, ", ".join(m.groups), ", ".join(m.missing_from), m.reason)
                         for m in result.missing],
                        columns=["head", "class", "clips", "groups", "missing_from", "reason"])


def write_outputs(result: SplitResult) -> list[Path]:
    """Every output file, atomically; a split without a share has no table (an old one there is removed)."""
    out = result.options.output_dir
    frames = {f"{split}.csv": table for split, table in result.tables().items()}
    frames |= {SPLITS_NAME: splits_frame(result), SUMMARY_NAME: summary_frame(result), MISSING_NAME: missing_frame(result)}
    for name in OUTPUT_NAMES:
        if name not in frames and (out / name).exists():
            (out / name).unlink()   # only reached with overwrite=true: a stale table of a split now without a share
    written = []
    for name, frame in frames.items():
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
        written.append(out / name)
    return written


def summary_lines(result: SplitResult) -> list[str]:
    """What the split came to, as Markdown tables, and the classes not in every split with the reason."""
    options, summary = result.options, summary_frame(result)
    wanted = active_splits(options.fractions)
    total = len(result.table)
    count = {(r.split, r.kind, r.head, r.cls): r.count for r in summary.rename(columns={"class": "cls"}).itertuples()}
    lines = [f"Split {total} rows in {len(set(result.groups))} {options.group_by} groups (seed {options.seed}) "
             f"into {options.output_dir}:", "", "| | " + " | ".join(wanted) + " |", "|---" * (len(wanted) + 1) + "|"]
    shares = {split: count[(split, "rows", "", "")] / total for split in wanted}
    lines.append("| rows | " + " | ".join(f"{count[(s, 'rows', '', '')]} ({shares[s]:.0%}; asked "
                                           f"{options.fractions[s]:.0%})" for s in wanted) + " |")
    lines.append(f"| {options.group_by} groups | " + " | ".join(str(count[(s, 'groups', '', '')]) for s in wanted) + " |")
    for head, name in _all_labels(result):
        lines.append(f"| {head}: {name} | " + " | ".join(str(count[(s, 'label', head, name)]) for s in wanted) + " |")
    lines.append("")
    for split in wanted:
        if abs(shares[split] - options.fractions[split]) > FAR_FROM_SHARE:
            lines.append(f"note: {split} holds {shares[split]:.0%} of the rows (asked {options.fractions[split]:.0%}): "
                         f"as close as whole {options.group_by} groups allow while covering the classes.")
    if result.missing:
        lines += [f"{len(result.missing)} class(es) cannot be in every split ({MISSING_NAME}):", "",
                  "| head | class | clips | missing from | reason |", "|---|---|---|---|---|"]
        lines += [f"| {m.head} | {m.label} | {m.clips} | {', '.join(m.missing_from)} | {m.reason} |"
                  for m in result.missing]
    else:
        lines.append("Every class of every head is in every split.")
    skipped = [split for split in SPLITS if split not in wanted]
    if skipped:
        lines.append(f"No table for {', '.join(skipped)} (fractions gives it no share).")
    return lines

