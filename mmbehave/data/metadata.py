"""Reading and checking the label tables (``raw/metadata/{train,val,test}.csv``).

Class lists come from here (union over splits, sorted), never from config, so a dataset with a new
species needs no config change.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mmbehave.core.errors import DataError
from mmbehave.data.layout import SPLITS, DatasetLayout

REQUIRED_COLUMNS = ("clip_id", "species", "behavior")


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
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}. "
                        f"The header must include {', '.join(REQUIRED_COLUMNS)}.")
    if frame.empty:
        raise DataError(f"{path}: the {split} split is empty; add at least one clip row.")
    for column in REQUIRED_COLUMNS:
        blank = frame.index[frame[column].str.strip() == ""]
        if len(blank):
            raise DataError(f"{path}, row {csv_row(blank[0])}: empty '{column}'. Every clip needs a clip_id, species and behavior.")
    duplicated = frame.index[frame["clip_id"].duplicated()]
    if len(duplicated):
        row = duplicated[0]
        raise DataError(f"{path}, row {csv_row(row)}: clip_id '{frame.at[row, 'clip_id']}' appears twice; clip ids must be unique.")
    return frame


def read_metadata(layout: DatasetLayout, splits: tuple[str, ...] = SPLITS) -> dict[str, pd.DataFrame]:
    return {split: read_split(layout, split) for split in splits}


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
