"""``experiment=site_cv``'s folds, settled on the command line before Hydra builds the sweep over them.

    cv.dir holds fold_<i>/            ─► used as they are (cv.folds, when given, must say as many)
    cv.dir has none, cv.folds=k|loo   ─► written there first from cv.labels (grouped by cv.group_by), as
                                         the split command would (``folds=``, ``group_by=``)
    neither                           ─► one line saying how to get them

Each has a default that fits the dataset, so ``experiment=site_cv data=synthetic_field cv.folds=3`` runs as is:
    cv.labels    the dataset's own train/val/test tables, as one table in memory
    cv.group_by  the dataset's group column: data.group_by when it names one, else the first of the usual
                 site / camera / event columns its tables have (site_id for the built-in field data)
    cv.dir       <paths.root>/outputs/cv/<dataset folder>_<group_by>_<k>/: stable, no timestamp, so the same
                 command after a kill finds its folds and continues

So one command runs a whole cross-validation, and the same command again (after a kill) finds its folds and
continues them. Hydra's own error for a sweep over no folds is a page of traceback; every problem here is one
line, before anything is written.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mmbehave.core.errors import ConfigError, UserError
from mmbehave.core.paths import config_dir
from mmbehave.domain.folds import MAKE_FOLDS, fold_folders

PRESET = "experiment=site_cv"


@dataclass(frozen=True)
class CrossValidation:
    """The cv.* keys as the command line and the preset compose them, with their defaults settled."""

    folder: Path | None
    folds: str | None
    labels: Path | None
    group_by: str | None
    heads: list[str]
    seed: int
    data: DictConfig  # the composed data node: the dataset's tables and group column
    outputs: Path     # <paths.root>/outputs


def settle_folds(argv: list[str]) -> list[str]:
    """Make or check ``cv.dir``'s folds for ``experiment=site_cv``: the overrides to add to the command line
    (the default cv.dir); a problem raises a UserError, one line, before anything is written."""
    if PRESET not in argv:
        return []
    cv = read_cross_validation(argv)
    # read at most once, and only when a default needs it: the label table, and the group column found in it
    table = functools.cache(lambda: label_table(cv))
    group = functools.cache(lambda: group_column_of(cv, table))
    added = []
    folder = cv.folder
    if folder is None:
        if cv.folds is None:
            raise ConfigError(f"{PRESET} needs cv.folds=<k> (or loo) to make folds, or cv.dir=<a folder of folds> "
                              f"that `{MAKE_FOLDS}` wrote.")
        folder = default_folder(cv, group())
        added.append(f"cv.dir={folder}")
        print(f"cv.dir={folder} (the folds' folder; the same command again continues there)")
    existing = fold_folders(folder)
    if existing:
        if cv.folds is not None and cv.folds.isdigit() and int(cv.folds) != len(existing):
            raise ConfigError(f"cv.dir={folder} holds {len(existing)} folds but cv.folds={cv.folds}: drop cv.folds to "
                              "use them, or give another cv.dir for new ones.")
        return added
    if cv.folds is None:
        raise ConfigError(f"cv.dir={folder}: no fold_<i>/ folders there; make them with `{MAKE_FOLDS}` (output_dir= that "
                          "folder), or add cv.folds=5 to make them there from the dataset's tables (or cv.labels=).")
    write_folds_from(cv, folder, table(), group())
    return added


def read_cross_validation(argv: list[str]) -> CrossValidation:
    """The train config composed from ``argv`` as Hydra will compose it (its own keys left out), read for cv.*."""
    from hydra import compose, initialize_config_dir

    overrides = [arg for arg in argv if not arg.startswith(("-", "hydra.", "hydra/", "+hydra"))]
    with initialize_config_dir(config_dir=str(config_dir())):
        cfg = compose("train", overrides=overrides)
    node = cfg.cv

    def text(key: str) -> str | None:
        value = node.get(key)
        return None if value is None or str(value).strip() == "" else str(value).strip()

    return CrossValidation(folder=Path(text("dir")).expanduser() if text("dir") else None, folds=text("folds"),
                           labels=Path(text("labels")).expanduser() if text("labels") else None,
                           group_by=text("group_by"), heads=[str(h) for h in node.heads], seed=int(node.seed),
                           data=cfg.data, outputs=Path(str(cfg.paths.root)) / "outputs")


def default_folder(cv: CrossValidation, group_by: str) -> Path:
    """``<paths.root>/outputs/cv/<dataset>_<group_by>_<k>``: named by what makes the folds, never by the time."""
    return cv.outputs / "cv" / f"{Path(str(cv.data.root)).name}_{group_by}_{cv.folds}"


def group_column_of(cv: CrossValidation, table: Callable[[], pd.DataFrame]) -> str:
    """cv.group_by, else the one column data.group_by names, else the first usual group column of the
    table the folds are made from (cv.labels, or the dataset's own tables)."""
    from mmbehave.data.metadata import GROUP_COLUMNS

    if cv.group_by:
        return cv.group_by
    declared = cv.data.get("group_by")
    declared = list(declared) if OmegaConf.is_list(declared) else [declared] if declared else []
    if len(declared) == 1:
        return str(declared[0])
    columns = set(table().columns)
    found = [column for column in GROUP_COLUMNS if column in columns]
    if not found:
        where = f"cv.labels={cv.labels}" if cv.labels else f"the dataset's tables ({cv.data.root})"
        raise ConfigError(f"cv.group_by: {where} have none of the usual group columns "
                          f"({', '.join(GROUP_COLUMNS)}); give cv.group_by=<the column whose values are held out "
                          f"together> (its columns: {', '.join(sorted(columns))}).")
    return found[0]


def label_table(cv: CrossValidation) -> pd.DataFrame:
    """The table the folds are made from: cv.labels, or every clip of the dataset's own tables."""
    if cv.labels:
        from mmbehave.data.splits.maker import read_table_file

        try:
            return read_table_file(cv.labels)
        except UserError as error:  # the split's own message, named by this command's key
            raise ConfigError(f"cv.labels={cv.labels}: {error}") from None
    return dataset_table(cv)


def dataset_table(cv: CrossValidation) -> pd.DataFrame:
    """Every clip of the dataset's own train/val/test tables, as one table (the built-in data made first)."""
    from mmbehave.data.layout import SPLITS
    from mmbehave.data.prepared import make_dataset_files

    make_dataset_files(cv.data)
    layout = dataset_layout(cv)
    paths = [layout.metadata_csv(split) for split in SPLITS]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(f"cv.labels: the dataset has no {', '.join(missing)}; give cv.labels=<a table of every "
                          "clip with clip_id, the heads and the group column>.")
    return pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in paths], ignore_index=True)


def dataset_layout(cv: CrossValidation):
    from mmbehave.data.layout import DatasetLayout

    return DatasetLayout(Path(str(cv.data.root)))


def write_folds_from(cv: CrossValidation, folder: Path, table: pd.DataFrame, group_by: str) -> None:
    """The folds of ``table`` (cv.labels, or the dataset's own tables) in ``folder``, as the split command makes them."""
    from mmbehave.data.splits.folds import folds_summary_lines, make_folds, write_folds
    from mmbehave.data.splits.options import SplitOptions

    source = cv.labels or dataset_layout(cv).metadata_dir  # names the tables in messages
    settings = {"labels": str(source), "output_dir": str(folder), "folds": cv.folds, "group_by": group_by,
                "heads": cv.heads, "seed": cv.seed}
    try:
        result = make_folds(SplitOptions.from_config(settings), table=table)
        write_folds(result)
    except UserError as error:  # the split's own message, in the keys of this command
        message = str(error)
        for key in ("group_by", "folds", "heads", "seed"):
            message = re.sub(rf"(?<![\w.]){key}=", f"cv.{key}=", message)
        raise ConfigError(f"cv.labels={source}: {message}") from None
    print("\n".join(folds_summary_lines(result)))
    print(f"\nWrote folds.csv and {len(result.folds)} fold folders in {folder}: the cross-validation trains on them.\n")
