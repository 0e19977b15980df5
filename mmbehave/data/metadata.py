"""Reading and checking the label tables (``raw/metadata/{train,val,test}.csv``).

Class lists come from here (union over splits, sorted), never from config, so a dataset with a new
species needs no config change. Hand-typed tables are checked for what silently spoils a result: a clip in
two splits (leakage), a clip id that escapes ``processed/``, one label spelled two ways, a head with a single
class. Surrounding whitespace is stripped from every id and label.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePath

import pandas as pd

from mmbehave.core.errors import DataError
from mmbehave.data.layout import SPLITS, DatasetLayout

REQUIRED_COLUMNS = ("clip_id", "species", "behavior")
LABEL_COLUMNS = ("species", "behavior")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassLists:
    species: list[str]
    behaviors: list[str]

    def to_dict(self) -> dict[str, list[str]]:
        return {"species": list(self.species), "behaviors": list(self.behaviors)}


def csv_row(index: int) -> int:
    """The 1-based line number a spreadsheet or editor shows for a DataFrame row (header is line 1)."""
    return int(index) + 2


def read_split(layout: DatasetLayout, split: str) -> pd.DataFrame:
    """One split's table, checked: file present, required columns, not empty, ids unique, labels set."""
    path = layout.metadata_csv(split)
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found. Expected {layout.metadata_dir}/<split>.csv "
                        f"for splits {', '.join(SPLITS)} with columns {', '.join(REQUIRED_COLUMNS)}.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV ({error}).") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}. "
                        f"The header must include {', '.join(REQUIRED_COLUMNS)}.")
    if frame.empty:
        raise DataError(f"{path}: the {split} split is empty; add at least one clip row.")
    for column in REQUIRED_COLUMNS:
        frame[column] = frame[column].str.strip()  # "alarm " and "alarm" are one label
        blank = frame.index[frame[column] == ""]
        if len(blank):
            raise DataError(f"{path}, row {csv_row(blank[0])}: empty '{column}'. Every clip needs a clip_id, species and behavior.")
    duplicated = frame.index[frame["clip_id"].duplicated()]
    if len(duplicated):
        row = duplicated[0]
        raise DataError(f"{path}, row {csv_row(row)}: clip_id '{frame.at[row, 'clip_id']}' appears twice; clip ids must be unique.")
    return frame


def read_metadata(layout: DatasetLayout, splits: tuple[str, ...] = SPLITS) -> dict[str, pd.DataFrame]:
    """The tables of ``splits``, each checked, and checked together (``check_tables``)."""
    tables = {split: read_split(layout, split) for split in splits}
    check_tables(layout, tables)
    return tables


def check_tables(layout: DatasetLayout, tables: dict[str, pd.DataFrame]) -> None:
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
    for column in LABEL_COLUMNS:
        _check_label_spellings(layout, tables, column)


def label_key(label: str) -> str:
    """What a person means by a label: case, spaces, '-' and '_' aside (``Wild Boar`` = ``wild_boar``)."""
    return re.sub(r"[\s_\-]+", "_", label.strip().lower())


def _check_label_spellings(layout: DatasetLayout, tables: dict[str, pd.DataFrame], column: str) -> None:
    spellings: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for split, table in tables.items():
        for index, label in table[column].items():
            spellings[label_key(label)][label].append(f"{layout.metadata_csv(split).name} row {csv_row(index)}")
    for variants in spellings.values():
        if len(variants) > 1:
            listed = "; ".join(f"'{label}' ({', '.join(rows[:3])}{', ...' if len(rows) > 3 else ''})"
                               for label, rows in sorted(variants.items()))
            raise DataError(f"{layout.metadata_dir}: {column} is written {len(variants)} ways that mean one label: "
                            f"{listed}. Write it one way in every table (they would otherwise be separate classes).")


def check_trainable_classes(layout: DatasetLayout, tables: dict[str, pd.DataFrame]) -> None:
    """Each head needs two classes in train: with one, every prediction is right and macro-F1 says 1.0."""
    for column in LABEL_COLUMNS:
        classes = sorted(set(tables["train"][column]))
        if len(classes) < 2:
            raise DataError(f"{layout.metadata_csv('train')}: every clip has {column} '{classes[0]}'; a {column} "
                            "head needs at least two classes in train to learn anything. Add clips of other classes.")


def class_lists(tables: dict[str, pd.DataFrame]) -> ClassLists:
    """Sorted union of the labels over all splits given."""
    species = sorted(set().union(*(set(t["species"]) for t in tables.values())))
    behaviors = sorted(set().union(*(set(t["behavior"]) for t in tables.values())))
    return ClassLists(species=species, behaviors=behaviors)


def check_labels_seen_in_train(layout: DatasetLayout, tables: dict[str, pd.DataFrame]) -> None:
    """A label in val/test that train never shows cannot be learned: say where it is."""
    train = tables["train"]
    for split, frame in tables.items():
        if split == "train":
            continue
        for column in ("species", "behavior"):
            known = set(train[column])
            unseen = frame.index[~frame[column].isin(known)]
            if len(unseen):
                row = unseen[0]
                raise DataError(f"{layout.metadata_csv(split)}, row {csv_row(row)}: {column} '{frame.at[row, column]}' "
                                f"never appears in {layout.metadata_csv('train')}. Add training clips of it or drop the row.")
