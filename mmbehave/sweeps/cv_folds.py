"""``experiment=site_cv``'s folds, settled on the command line before Hydra builds the sweep over them.

    cv.dir holds fold_<i>/            ─► used as they are (cv.folds, when given, must say as many)
    cv.dir has none, cv.folds=k|loo   ─► written there first from cv.labels (grouped by cv.group_by), as
                                         ``python -m mmbehave.split labels= out= group_by= folds=`` would
    neither                           ─► one line saying how to get them

So one command runs a whole cross-validation, and the same command again (after a kill) finds its folds and
continues them. Hydra's own error for a sweep over no folds is a page of traceback; every problem here is one
line, before anything is written.
"""

from __future__ import annotations

import re

import yaml
from omegaconf import OmegaConf

from mmbehave.core.errors import UserError
from mmbehave.core.folds import MAKE_FOLDS, fold_folders
from mmbehave.core.paths import config_dir

PRESET = "experiment=site_cv"


def given(argv: list[str], key: str) -> str | None:
    """The last ``key=value`` on the command line (None: not given, or given empty)."""
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{key}=")]
    return values[-1].strip() or None if values else None


def settle_folds(argv: list[str]) -> str | None:
    """Make or check ``cv.dir``'s folds for ``experiment=site_cv``; the problem as one line, or None."""
    if PRESET not in argv:
        return None
    folder, folds = given(argv, "cv.dir"), given(argv, "cv.folds")
    make_here = "cv.folds=5 cv.labels=<a table of every clip> (cv.group_by=site) to make them there"
    if folder is None:
        return f"{PRESET} needs cv.dir=<the folder of folds>: one that `{MAKE_FOLDS}` wrote, or a new one with {make_here}."
    existing = fold_folders(folder)
    if existing:
        if folds is not None and folds.isdigit() and int(folds) != len(existing):
            return (f"cv.dir={folder} holds {len(existing)} folds but cv.folds={folds}: drop cv.folds to use them, "
                    "or give another cv.dir for new ones.")
        return None
    if folds is None:
        return f"cv.dir={folder}: no fold_<i>/ folders there; make them with `{MAKE_FOLDS}` (out= that folder), or add {make_here}."
    return _write_folds(argv, folder, folds)


def _write_folds(argv: list[str], folder: str, folds: str) -> str | None:
    from mmbehave.data.splits.folds import folds_summary_lines, make_folds, write_folds
    from mmbehave.data.splits.options import SplitOptions

    labels = given(argv, "cv.labels")
    if labels is None:
        return (f"cv.folds={folds} makes the folds from a label table: add cv.labels=<a CSV of every clip with "
                "clip_id, the heads and the group column> (or make them with `" + MAKE_FOLDS + "`).")
    # The preset's own cv defaults (group_by, heads, seed), overridden as the command line says.
    settings = dict(OmegaConf.to_container(OmegaConf.load(config_dir() / "experiment" / "site_cv.yaml").cv))
    for key in ("group_by", "heads", "seed"):
        value = given(argv, f"cv.{key}")
        if value is not None:
            settings[key] = yaml.safe_load(value)  # as Hydra reads a value: [a,b] a list, 3 a number
    settings.update(labels=labels, out=folder, folds=folds)
    try:
        result = make_folds(SplitOptions.from_config(settings))
        write_folds(result)
    except UserError as error:  # the split's own message, in the keys of this command
        message = str(error)
        for key in ("group_by", "folds", "heads", "seed"):
            message = re.sub(rf"(?<![\w.]){key}=", f"cv.{key}=", message)
        return f"cv.labels={labels}: {message}"
    print("\n".join(folds_summary_lines(result)))
    print(f"\nWrote folds.csv and {len(result.folds)} fold folders in {folder}: the cross-validation trains on them.\n")
    return None
