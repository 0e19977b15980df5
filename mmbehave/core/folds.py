"""Where cross-validation folds live: ``python -m mmbehave.split ... folds=k out=<dir>`` writes ``<dir>/fold_<i>/``,
``experiment=site_cv cv.dir=<dir>`` trains one run per such folder. One naming rule for both sides."""

from __future__ import annotations

from pathlib import Path

PREFIX = "fold_"


def fold_names(count: int) -> list[str]:
    return [f"{PREFIX}{index}" for index in range(count)]


def fold_folders(root: str | Path) -> list[Path]:
    """The ``fold_<i>/`` folders under ``root``, in fold order (none: an empty list)."""
    folders = [path for path in Path(root).expanduser().glob(f"{PREFIX}*")
               if path.is_dir() and path.name[len(PREFIX):].isdigit()]
    return sorted(folders, key=lambda path: int(path.name[len(PREFIX):]))


MAKE_FOLDS = "python -m mmbehave.split labels=<table> out=cv/ group_by=site folds=5"
