"""Camtrap DP 1.0 packages (the TDWG camera-trap exchange format GBIF publishes): find, read and check them.

    datapackage.json   lists the resources deployments / media / observations (CSV files) and the profile
    deployments.csv    one row per camera placement: deploymentID, locationID, latitude, longitude, ...
    media.csv          one row per file: mediaID, deploymentID, timestamp, filePath, fileName, fileMediatype
    observations.csv   one row per classification: observationLevel media (of mediaID) or event (of the
                       deployment's media from eventStart to eventEnd), observationType, scientificName, behavior

``open_package`` takes the package's folder, its ``datapackage.json`` or a ``.zip`` of it, and yields a
``CamtrapPackage`` whose tables are read as text (every cell a str, blanks ""), with the columns mmbehave
relies on checked and the timestamps parsed to UTC. Mistakes are a one-line ``DataError`` / ``InputError``
naming the file, the row and the fix.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from mmbehave.core.errors import DataError, InputError
from mmbehave.data.metadata import csv_row

VERSION = "1.0"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
RESOURCES = ("deployments", "media", "observations")
SOURCE_FOLDER = "camtrap_dp"  # <dataset>/raw/camtrap_dp/: the imported package's datapackage.json and tables


def schema_url(resource: str) -> str:
    return f"{BASE_URL}/{resource}-table-schema.json"


# The standard's field names, in its order (what the exporter writes; the importer reads those it needs).
DEPLOYMENT_FIELDS = (
    "deploymentID", "locationID", "locationName", "latitude", "longitude", "coordinateUncertainty",
    "deploymentStart", "deploymentEnd", "setupBy", "cameraID", "cameraModel", "cameraDelay", "cameraHeight",
    "cameraDepth", "cameraTilt", "cameraHeading", "detectionDistance", "timestampIssues", "baitUse",
    "featureType", "habitat", "deploymentGroups", "deploymentTags", "deploymentComments")
MEDIA_FIELDS = (
    "mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic", "fileName",
    "fileMediatype", "exifData", "favorite", "mediaComments")
OBSERVATION_FIELDS = (
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd", "observationLevel",
    "observationType", "cameraSetupType", "scientificName", "count", "lifeStage", "sex", "behavior",
    "individualID", "individualPositionRadius", "individualPositionAngle", "individualSpeed", "bboxX", "bboxY",
    "bboxWidth", "bboxHeight", "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments")
FIELDS = {"deployments": DEPLOYMENT_FIELDS, "media": MEDIA_FIELDS, "observations": OBSERVATION_FIELDS}

# What the importer cannot do without (the standard requires more; those it does not need are not checked).
REQUIRED = {
    "deployments": ("deploymentID",),
    "media": ("mediaID", "deploymentID", "timestamp", "filePath", "fileMediatype"),
    "observations": ("observationID", "deploymentID", "observationLevel", "observationType", "eventStart", "eventEnd"),
}
OBSERVATION_LEVELS = ("media", "event")
OBSERVATION_TYPES = ("animal", "human", "vehicle", "blank", "unknown", "unclassified")


@dataclass
class CamtrapPackage:
    descriptor_path: Path          # the datapackage.json read (inside a temporary folder for a .zip)
    descriptor: dict
    deployments: pd.DataFrame
    media: pd.DataFrame            # + "time": timestamp as a UTC pandas Timestamp
    observations: pd.DataFrame     # + "start" / "end": eventStart / eventEnd in UTC (NaT where blank)
    paths: dict[str, Path]         # resource name -> its CSV

    @property
    def folder(self) -> Path:
        return self.descriptor_path.parent


@contextlib.contextmanager
def open_package(path: str | Path) -> Iterator[CamtrapPackage]:
    """Read the package at ``path`` (folder, datapackage.json or .zip); a .zip is unpacked for the duration."""
    if not str(path or "").strip():
        raise InputError("package= is required: a Camtrap DP folder, its datapackage.json, or a .zip of it.")
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"package={path}: no such file or folder. Give a Camtrap DP folder, its datapackage.json "
                         "or a .zip of it.")
    if path.is_file() and path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="camtrap_dp_") as unpacked:
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(unpacked)  # extractall drops absolute and '..' member paths
            except zipfile.BadZipFile as error:
                raise InputError(f"package={path}: not a readable .zip ({error}).") from error
            found = sorted(Path(unpacked).rglob("datapackage.json"), key=lambda p: len(p.parts))
            if not found:
                raise InputError(f"package={path}: the .zip holds no datapackage.json; zip the package folder "
                                 "(datapackage.json, deployments.csv, media.csv, observations.csv).")
            yield read_package(found[0])
        return
    yield read_package(path / "datapackage.json" if path.is_dir() else path)


def read_package(descriptor_path: Path) -> CamtrapPackage:
    if not descriptor_path.is_file():
        raise InputError(f"{descriptor_path}: not found. A Camtrap DP package is a folder with datapackage.json, "
                         "deployments.csv, media.csv and observations.csv; give package=<that folder>.")
    try:
        descriptor = json.loads(descriptor_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{descriptor_path}: not valid JSON ({error}); fix or re-export the package.") from error
    if not isinstance(descriptor, dict):
        raise DataError(f"{descriptor_path}: expected a JSON object with 'resources'; re-export the package.")
    paths = {name: resource_path(descriptor_path, descriptor, name) for name in RESOURCES}
    tables = {name: read_table(paths[name], name) for name in RESOURCES}
    media, observations = tables["media"], tables["observations"]
    duplicated = media.index[media["mediaID"].duplicated()]
    if len(duplicated):
        row = duplicated[0]
        raise DataError(f"{paths['media']}, row {csv_row(row)}: mediaID '{media.at[row, 'mediaID']}' appears twice; "
                        "mediaID is the table's key, so each must be unique.")
    media["time"] = parse_times(media, "timestamp", paths["media"], required=media.index)
    bad_level = observations.index[~observations["observationLevel"].isin(OBSERVATION_LEVELS)]
    if len(bad_level):
        row = bad_level[0]
        raise DataError(f"{paths['observations']}, row {csv_row(row)}: observationLevel "
                        f"'{observations.at[row, 'observationLevel']}' is neither media nor event (Camtrap DP 1.0); "
                        "set it to media (the observation is of mediaID) or event (of eventStart-eventEnd).")
    events = observations.index[observations["observationLevel"] == "event"]
    observations["start"] = parse_times(observations, "eventStart", paths["observations"], required=events)
    observations["end"] = parse_times(observations, "eventEnd", paths["observations"], required=events)
    return CamtrapPackage(descriptor_path, descriptor, tables["deployments"], media, observations, paths)


def resource_path(descriptor_path: Path, descriptor: dict, name: str) -> Path:
    """The CSV of resource ``name``: its ``path`` in datapackage.json, else ``<name>.csv`` beside it."""
    folder = descriptor_path.parent
    for resource in descriptor.get("resources") or []:
        if not isinstance(resource, dict) or resource.get("name") != name:
            continue
        given = resource.get("path")
        if isinstance(given, list):  # a multi-part resource: mmbehave reads the first part only when it is alone
            if len(given) != 1:
                raise DataError(f"{descriptor_path}: resource '{name}' is split into {len(given)} files; "
                                "join them into one CSV and list that path.")
            given = given[0]
        if not isinstance(given, str) or not given:
            raise DataError(f"{descriptor_path}: resource '{name}' has no path; set it to its CSV, e.g. {name}.csv.")
        if is_remote(given):
            raise DataError(f"{descriptor_path}: resource '{name}' is at {given}, which is not downloaded; "
                            f"download it beside datapackage.json and set its path to the file name.")
        path = folder / given
        if not path.is_file():
            raise DataError(f"{descriptor_path}: resource '{name}' names {given}, which is not in {folder}; "
                            "put the file there or fix its path.")
        return path
    fallback = folder / f"{name}.csv"
    if fallback.is_file():
        return fallback
    raise DataError(f"{descriptor_path}: no '{name}' resource and no {name}.csv beside it; a Camtrap DP package "
                    "holds deployments, media and observations.")


def read_table(path: Path, name: str) -> pd.DataFrame:
    """A resource as text cells, stripped; checked for the columns mmbehave needs; missing optional ones blank."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable UTF-8 CSV ({error}); re-export the {name} table.") from error
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in REQUIRED[name] if column not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; Camtrap DP 1.0 {name} tables have "
                        f"{', '.join(REQUIRED[name])} (and more). Re-export the package as Camtrap DP 1.0 or add them.")
    for column in table.columns:
        table[column] = table[column].astype(str).str.strip()
    for column in FIELDS[name]:
        if column not in table.columns:
            table[column] = ""
    table = table.reset_index(drop=True)
    blank = table.index[(table[list(REQUIRED[name][:1])] == "").any(axis=1)]
    if len(blank):
        raise DataError(f"{path}, row {csv_row(blank[0])}: empty {REQUIRED[name][0]}; every row needs one.")
    return table


def parse_times(table: pd.DataFrame, column: str, path: Path, required) -> pd.Series:
    """``column`` as UTC timestamps; a blank or unreadable value in a ``required`` row is a DataError."""
    text = table[column]
    times = pd.to_datetime(text.where(text != ""), utc=True, format="ISO8601", errors="coerce")
    bad = times.index[times.isna() & table.index.isin(required)]
    if len(bad):
        row = bad[0]
        raise DataError(f"{path}, row {csv_row(row)}: {column} '{text.at[row]}' is not an ISO 8601 date-time; "
                        "write it like 2021-05-31T08:25:38+02:00 (or ...Z for UTC).")
    return times


def is_remote(path: str) -> bool:
    return path.lower().startswith(("http://", "https://", "ftp://"))


def media_kind(mediatype: str) -> str | None:
    """image | video | audio from fileMediatype (image/jpeg, video/mp4, audio/wav), else None."""
    kind = mediatype.split("/", 1)[0].strip().lower()
    return kind if kind in ("image", "video", "audio") else None


def iso_utc(time: pd.Timestamp) -> str:
    """A timestamp as Camtrap DP writes it: ``YYYY-MM-DDThh:mm:ssZ``."""
    return pd.Timestamp(time).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
