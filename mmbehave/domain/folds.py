"""What a set of cross-validation folds is on disk, and the one rule every part that touches folds follows.

    <dir>/folds.csv     clip_id, group, fold: the fold whose test set holds each clip
    <dir>/fold_<i>/     train.csv, val.csv, test.csv of fold i (a split, as ``python -m mmbehave.split`` writes)

Who does what with them (each imports its names from here, none defines a fold of its own):
    made      data/splits/folds.py      ``python -m mmbehave.split ... folds=k``, and cv_folds below
    settled   sweeps/cv_folds.py        ``experiment=site_cv``: cv.dir / cv.labels / cv.group_by defaults
    swept     fold_sweep (here)         ``${cv_folds:${cv.dir}}``: one run per fold folder
    tagged    fold_tags (here)          each fold run's ``fold`` and ``held_out`` tags
    resumed   sweeps/fold_resume.py     a killed cross-validation trains only its unfinished folds
The makers need the splitter and the resume needs MLflow, which is why those two live in their layers."""

from __future__ import annotations

import csv
from pathlib import Path

PREFIX = "fold_"
FOLDS_NAME = "folds.csv"  # beside the fold folders: clip_id, group, fold (the fold whose test set holds the clip)


def fold_names(count: int) -> list[str]:
    return [f"{PREFIX}{index}" for index in range(count)]


def fold_folders(root: str | Path) -> list[Path]:
    """The ``fold_<i>/`` folders under ``root``, in fold order (none: an empty list)."""
    folders = [path for path in Path(root).expanduser().glob(f"{PREFIX}*") if path.is_dir() and is_fold_folder(path)]
    return sorted(folders, key=lambda path: int(path.name[len(PREFIX):]))


def is_fold_folder(folder: str | Path) -> bool:
    name = Path(str(folder)).name
    return name.startswith(PREFIX) and name[len(PREFIX):].isdigit()


def fold_sweep(root: str | Path) -> str:
    """``${cv_folds:${cv.dir}}``: the fold folders under ``root`` as the comma-separated sweep of
    conf/experiment/site_cv.yaml (absolute, so the runs find them from any folder). The command line checks that
    there are some before Hydra gets here (``sweeps.cv_folds.settle_folds``)."""
    return ",".join(str(path.resolve()) for path in fold_folders(root))


def short_list(names: list[str], most: int = 8) -> str:
    """``a, b, c`` or, for a long list (a fold of 130 clips), its first ``most`` and how many in all."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])}, … ({len(names)} in all)"


def held_out_groups(fold_folder: str | Path) -> list[str]:
    """The groups a fold holds out as its test set, from the ``folds.csv`` beside it (none found: [])."""
    folder = Path(str(fold_folder)).expanduser()
    try:
        with open(folder.parent / FOLDS_NAME, newline="", encoding="utf-8") as table:
            return sorted({row["group"] for row in csv.DictReader(table) if row.get("fold") == folder.name})
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return []


def fold_tags(labels_dir: str | Path | None) -> dict[str, str]:
    """MLflow tags of a run trained on a fold folder (``data.labels_dir``): ``fold`` and ``held_out``, so
    runs group by fold (``report group_by=fold``); {} for any other run."""
    if not labels_dir or not is_fold_folder(labels_dir):
        return {}
    return {"fold": Path(str(labels_dir)).name, "held_out": short_list(held_out_groups(labels_dir), most=20)}


MAKE_FOLDS = "python -m mmbehave.split labels=<table> output_dir=cv/ group_by=site folds=5"
