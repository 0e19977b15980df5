"""Reading and checking the label tables (``raw/metadata/{train,val,test}.csv``).

Class lists come from here (union over splits, sorted), never from config, so a dataset with a new
species needs no config change. Hand-typed tables are checked for what silently spoils a result: a clip in
two splits (leakage), a site (camera, event) in two splits when the tables name one, a clip id that escapes
``processed/``, one label spelled two ways, a head with a single class. Surrounding whitespace is stripped from
every id and label.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePath
from typing import Sequence

import pandas as pd

from mmbehave.core.errors import ConfigError, DataError
from mmbehave.domain.heads import HeadSpec, label_columns
from mmbehave.data.layout import SPLITS, DatasetLayout

ID_COLUMN = "clip_id"
# Columns that say where a clip was recorded, checked when present (data.group_by: null): clips sharing a
# value must share a split. Not locationID: the Camtrap DP importer's default split.by=deploymentID may put two
# deployments at one place in different splits by design (data.group_by=locationID checks it all the same).
GROUP_COLUMNS = ("site", "site_id", "deploymentID", "cam_id", "event_id", "eventID")
ROWS_NAMED = 3              # rows named per file in a leakage error before "..."
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassLists:
    """{head name: its class names, sorted}, in the order of ``model.heads``."""

    heads: dict[str, list[str]]

    def __getitem__(self, head: str) -> list[str]:
        return self.heads[head]

    def names(self) -> list[str]:
        return list(self.heads)

    def sizes(self) -> dict[str, int]:
        return {head: len(names) for head, names in self.heads.items()}

    def to_dict(self) -> dict[str, list[str]]:
        return {head: list(names) for head, names in self.heads.items()}

    @classmethod
    def from_checkpoint(cls, stored: dict, heads: Sequence[HeadSpec]) -> ClassLists:
        """The class lists a checkpoint stores for ``heads``."""
        return cls({head.name: list(stored[head.name]) for head in heads})


def csv_row(index: int) -> int:
    """The 1-based line number a spreadsheet or editor shows for a DataFrame row (header is line 1)."""
    return int(index) + 2


def required_columns(heads: Sequence[HeadSpec] | None) -> list[str]:
    return [ID_COLUMN, *label_columns(heads or ())]


def read_split(layout: DatasetLayout, split: str, heads: Sequence[HeadSpec] | None) -> pd.DataFrame:
    """One split's table, checked: file present, required columns, not empty, ids unique, labels set.
    ``heads``: the label columns to require and check (None: clip ids only, as preprocessing needs)."""
    path = layout.metadata_csv(split)
    required = required_columns(heads)
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found. Expected {layout.metadata_dir}/<split>.csv "
                        f"for splits {', '.join(SPLITS)} with columns {', '.join(required)}.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({error}).") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}. "
                        f"The header must include {', '.join(required)} (model.heads names the label columns).")
    if frame.empty:
        raise DataError(f"{path}: the {split} split is empty; add at least one clip row.")
    for column in label_columns(heads or ()):
        _remove_invisible_characters(path, frame, column)
    for column in required:
        frame[column] = frame[column].str.strip()  # "alarm " and "alarm" are one label
        blank = frame.index[frame[column] == ""]
        if len(blank):
            raise DataError(f"{path}, row {csv_row(blank[0])}: empty '{column}'. Every clip needs a "
                            f"{', '.join(required)}.")
    for head in heads or ():
        _check_cells_fit_head(path, frame, head)
    duplicated = frame.index[frame["clip_id"].duplicated()]
    if len(duplicated):
        row = duplicated[0]
        raise DataError(f"{path}, row {csv_row(row)}: clip_id '{frame.at[row, 'clip_id']}' appears twice; clip ids must be unique.")
    return frame


def visible_text(text: str) -> str:
    """``text`` in Unicode's composed form without invisible format characters (zero-width spaces and joiners,
    byte-order marks, direction marks, soft hyphens), which spreadsheets and copied web text bring in."""
    return "".join(ch for ch in unicodedata.normalize("NFC", text) if unicodedata.category(ch) != "Cf")


def _remove_invisible_characters(path, frame: pd.DataFrame, column: str) -> None:
    """'alarm\u200b' and 'alarm' look alike and must be one class: clean the column, and say which rows had them."""
    cleaned = frame[column].map(visible_text)
    changed = frame.index[cleaned != frame[column].map(lambda cell: unicodedata.normalize("NFC", cell))]
    if len(changed):
        rows = ", ".join(str(csv_row(i)) for i in changed[:ROWS_NAMED]) + (", ..." if len(changed) > ROWS_NAMED else "")
        log.warning("%s: %d '%s' cell(s) held invisible characters (zero-width spaces, byte-order marks, ...), removed "
                    "so that they name the same class as their visible text: row(s) %s (e.g. %r -> %r).", path,
                    len(changed), column, rows, frame.at[changed[0], column], cleaned[changed[0]])
    frame[column] = cleaned


def _check_cells_fit_head(path, frame: pd.DataFrame, head: HeadSpec) -> None:
    """A single head reading ``walking|vocalizing`` would learn it as one class of its own: say so."""
    if head.multi:
        empty = [index for index, cell in frame[head.column].items() if not head.cell_labels(cell)]
        if empty:
            raise DataError(f"{path}, row {csv_row(empty[0])}: '{frame.at[empty[0], head.column]}' holds no "
                            f"{head.column} label once split at '{head.separator}'; give each clip at least one.")
        return
    joined = frame.index[frame[head.column].str.contains("|", regex=False)]
    if len(joined):
        row = joined[0]
        raise DataError(f"{path}, row {csv_row(row)}: {head.column} '{frame.at[row, head.column]}' looks like several "
                        f"labels, but head {head.name} is single-label. For clips with several labels set "
                        f"model.heads.{head.name}.type=multi; otherwise write one label per cell.")


def read_metadata(layout: DatasetLayout, splits: tuple[str, ...] = SPLITS, *,
                  heads: Sequence[HeadSpec] | None) -> dict[str, pd.DataFrame]:
    """The tables of ``splits``, each checked, and checked together (``check_tables``)."""
    tables = {split: read_split(layout, split, heads) for split in splits}
    check_tables(layout, tables, heads)
    return tables


def check_tables(layout: DatasetLayout, tables: dict[str, pd.DataFrame],
                 heads: Sequence[HeadSpec] | None) -> None:
    """What one file alone cannot show: clip ids unusable as file names or shared by two splits, and labels
    written two ways across the tables."""
    seen: dict[str, tuple[str, int]] = {}
    for split, table in tables.items():
        path = layout.metadata_csv(split)
        for index, clip_id in table["clip_id"].items():
            parts = PurePath(clip_id).parts
            if PurePath(clip_id).is_absolute() or ".." in parts or "\\" in clip_id:
                raise DataError(f"{path}, row {csv_row(index)}: clip_id '{clip_id}' cannot be used as a file name "
                                "under processed/; use letters, digits, '-', '_' (and '/' for sub-folders).")
            if clip_id in seen:
                other, other_index = seen[clip_id]
                raise DataError(f"clip_id '{clip_id}' is in {layout.metadata_csv(other)}, row {csv_row(other_index)} "
                                f"and in {path}, row {csv_row(index)}: a clip in two splits leaks into the "
                                "evaluation; keep it in one split only.")
            seen[clip_id] = (split, index)
    for head in heads or ():
        _check_label_spellings(layout, tables, head)


def label_key(label: str) -> str:
    """What a person means by a label: case, spaces, '-' and '_' aside (``Wild Boar`` = ``wild_boar``)."""
    return re.sub(r"[\s_\-]+", "_", label.strip().lower())


def _check_label_spellings(layout: DatasetLayout, tables: dict[str, pd.DataFrame], head: HeadSpec) -> None:
    column = head.column
    spellings: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for split, table in tables.items():
        for index, cell in table[column].items():
            for label in head.cell_labels(cell):
                spellings[label_key(label)][label].append(f"{layout.metadata_csv(split).name} row {csv_row(index)}")
    for variants in spellings.values():
        if len(variants) > 1:
            listed = "; ".join(f"'{label}' ({', '.join(rows[:3])}{', ...' if len(rows) > 3 else ''})"
                               for label, rows in sorted(variants.items()))
            raise DataError(f"{layout.metadata_dir}: {column} is written {len(variants)} ways that mean one label: "
                            f"{listed}. Write it one way in every table (they would otherwise be separate classes).")


def head_labels(table: pd.DataFrame, head: HeadSpec) -> set[str]:
    """Every label of ``head`` in one table (a multi-label cell counts for each of its labels)."""
    return {label for cell in table[head.column] for label in head.cell_labels(cell)}


def check_trainable_classes(layout: DatasetLayout, tables: dict[str, pd.DataFrame],
                            heads: Sequence[HeadSpec]) -> None:
    """Each head needs two classes in train: with one, every prediction is right and macro-F1 says 1.0."""
    for head in heads:
        classes = sorted(head_labels(tables["train"], head))
        if len(classes) < 2:
            raise DataError(f"{layout.metadata_csv('train')}: every clip has {head.column} '{classes[0]}'; a "
                            f"{head.name} head needs at least two classes in train to learn anything. Add clips of "
                            "other classes.")


def class_lists(tables: dict[str, pd.DataFrame], heads: Sequence[HeadSpec]) -> ClassLists:
    """Per head, the sorted union of its labels over all splits given."""
    return ClassLists({head.name: sorted(set().union(*(head_labels(t, head) for t in tables.values())))
                       for head in heads})


def check_labels_seen_in_train(layout: DatasetLayout, tables: dict[str, pd.DataFrame],
                               heads: Sequence[HeadSpec]) -> None:
    """A label in val/test that train never shows cannot be learned: say where it is."""
    train = tables["train"]
    for split, frame in tables.items():
        if split == "train":
            continue
        for head in heads:
            known = head_labels(train, head)
            for index, cell in frame[head.column].items():
                unseen = [label for label in head.cell_labels(cell) if label not in known]
                if unseen:
                    raise DataError(f"{layout.metadata_csv(split)}, row {csv_row(index)}: {head.column} '{unseen[0]}' "
                                    f"never appears in {layout.metadata_csv('train')}. Add training clips of it or "
                                    "drop the row.")


def check_groups_in_one_split(layout: DatasetLayout, tables: dict[str, pd.DataFrame],
                              group_by: str | Sequence[str] | None = None) -> None:
    """A site (camera, event) in two splits leaks as a clip does: the model is tested on a place it trained on.

    ``group_by`` (``data.group_by``) names the column(s) to check, which every table must have; null
    checks those of ``GROUP_COLUMNS`` that a table has. Rows with an empty cell belong to no known group."""
    for column in _group_columns(layout, tables, group_by):
        rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))  # value -> split -> rows
        for split, table in tables.items():
            if column in table.columns:
                for index, value in table[column].str.strip().items():
                    if value:
                        rows[value][split].append(csv_row(index))
        for value, by_split in rows.items():
            if len(by_split) > 1:
                where = " and in ".join(f"{layout.metadata_csv(split)}, {_rows_text(found)}"
                                     for split, found in by_split.items())
                raise DataError(f"{column} '{value}' is in {where}: a {column} in two splits leaks into the "
                                f"evaluation; keep each {column} in one split (python -m mmbehave.split "
                                f"group_by={column} does).")


def _group_columns(layout: DatasetLayout, tables: dict[str, pd.DataFrame],
                   configured: str | Sequence[str] | None) -> list[str]:
    if configured is None:
        return [column for column in GROUP_COLUMNS if any(column in table.columns for table in tables.values())]
    columns = [configured] if isinstance(configured, str) else [str(column) for column in configured]
    for column in columns:
        lacking = [split for split, table in tables.items() if column not in table.columns]
        if len(lacking) == len(tables):
            found = sorted(set().union(*(table.columns for table in tables.values())))
            raise ConfigError(f"data.group_by={column}: no such column in {layout.metadata_dir}/*.csv (they "
                              f"have {', '.join(found)}); name one of them, or null to check the usual ones.")
        if lacking:
            raise DataError(f"{layout.metadata_csv(lacking[0])}: no column '{column}' (data.group_by), which "
                            "the other splits' tables have; add it so every clip's group is known.")
    return columns


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:ROWS_NAMED])) + (", ..." if len(rows) > ROWS_NAMED else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"
