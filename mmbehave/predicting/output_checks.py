"""Where predict may write: checked before the model loads, so that a wrong ``output=`` costs a second, and
never replaces what predict did not write itself.

    csv         output= is a file: not a folder, not one of the inputs (a clip, the checkpoint, the event
                table), not inside a dataset's raw/ or an imported Camtrap DP source; an existing file there
                must be a predictions table predict wrote (its columns say so)
    camtrap_dp  output= is a folder: not a file, not inside what is read; a Camtrap DP package already there
                must be one predict wrote (its datapackage.json is named ``mmbehave-predictions``)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from mmbehave.core.errors import InputError
from mmbehave.core.guards import refuse_output_over_inputs

# Columns every clip table of predict has (tables.clip_row): how an earlier output is recognised.
OWN_TABLE_COLUMNS = ("path", "clip_id", "model_sha256")
OWN_PACKAGE_NAME = "mmbehave-predictions"   # camtrap_dp_export writes it into datapackage.json
PACKAGE_FILES = ("datapackage.json", "observations.csv", "media.csv", "deployments.csv")


def check_output(output: Path, output_format: str, inputs: Iterable[Path], sources: Iterable[Path]) -> None:
    """InputError (one line) for an output that would replace an input or something predict did not write."""
    inputs, sources = list(inputs), list(sources)
    refuse_output_over_inputs(output, key="output", inputs=inputs, sources=sources)
    if output_format == "camtrap_dp":
        _check_package_folder(output)
    else:
        _check_table_file(output)


def _check_table_file(output: Path) -> None:
    if output.is_dir():
        raise InputError(f"output={output} is a folder; give the CSV file to write, e.g. output={output / 'predictions.csv'}.")
    if output.exists() and not is_own_table(output):
        raise InputError(f"output={output} exists and is not a predictions table written by mmbehave.predict; it is "
                         "left as it is. Choose another output= (or move that file).")


def is_own_table(path: Path) -> bool:
    try:
        header = pd.read_csv(path, nrows=0, dtype=str).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        return False
    return all(column in header for column in OWN_TABLE_COLUMNS)


def _check_package_folder(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise InputError(f"output={output} is a file; format=camtrap_dp writes a folder (observations.csv, media.csv, "
                         "deployments.csv, datapackage.json). Give a folder.")
    present = [name for name in PACKAGE_FILES if (output / name).exists()]
    if present and not is_own_package(output):
        raise InputError(f"output={output} holds a Camtrap DP package ({', '.join(present)}) that mmbehave.predict did "
                         "not write; it is left as it is. Choose an empty or new folder.")


def is_own_package(folder: Path) -> bool:
    try:
        descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(descriptor, dict) and descriptor.get("name") == OWN_PACKAGE_NAME
