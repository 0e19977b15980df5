"""Predictions -> a Camtrap DP 1.0 package (``python -m mmbehave.predict ... format=camtrap_dp output=<folder>``).

    <folder>/observations.csv   one row per clip: observationType animal (or blank / human / vehicle / unknown
                                when the predicted species is such a type, as import_camtrap_dp made it),
                                scientificName, behavior, classificationMethod machine, classifiedBy
                                "mmbehave <version> <MLflow run id>", classificationProbability (species head),
                                observationTags behaviorProbability:<p>
    <folder>/media.csv, deployments.csv, datapackage.json (profile, resources, project, spatial, temporal, ...)

Clips of a dataset written by ``import_camtrap_dp`` (predict ``package=<its out>``, or found above ``input=``)
keep their deploymentID, mediaID or eventID and times, and the source package's media and deployment rows: a
video or audio clip is a media-level observation of its file, an image burst an event-level observation of its
images. Other clips get placeholders: deployment ``mmbehave-unknown`` at latitude 0, longitude 0; media rows with
filePath relative to ``input=`` and the file's modification time as timestamp.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmbehave.core.atomic import atomic_path, write_text_atomic
from mmbehave.core.errors import InputError
from mmbehave.data.camtrap_dp.package import (
    DEPLOYMENT_FIELDS,
    MEDIA_FIELDS,
    OBSERVATION_FIELDS,
    OBSERVATION_TYPES,
    PROFILE_URL,
    RESOURCES,
    SOURCE_FOLDER,
    iso_utc,
    schema_url,
)
from mmbehave.data.layout import SPLITS, DatasetLayout

PLACEHOLDER_DEPLOYMENT = "mmbehave-unknown"
SOURCE_DIR = Path("raw") / SOURCE_FOLDER   # where import_camtrap_dp keeps the source's tables
MEDIATYPES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "quicktime", ".avi": "x-msvideo", ".mkv": "x-matroska",
              ".webm": "webm", ".wav": "wav", ".m4a": "mp4", ".flac": "flac", ".mp3": "mpeg", ".ogg": "ogg",
              ".opus": "opus"}


@dataclass
class ImportedDataset:
    root: Path
    clips: dict[Path, dict]        # the clip's file under raw/ (resolved) -> its metadata row
    deployments: pd.DataFrame
    media: pd.DataFrame
    descriptor: dict


def find_imported_dataset(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that import_camtrap_dp wrote (it holds raw/camtrap_dp/)."""
    start = start.expanduser().resolve()
    for folder in [start, *start.parents]:
        if (folder / SOURCE_DIR / "datapackage.json").is_file():
            return folder
    return None


def load_imported_dataset(root: Path) -> ImportedDataset:
    layout = DatasetLayout(root)
    clips = {}
    for split in SPLITS:
        if layout.metadata_csv(split).is_file():
            table = pd.read_csv(layout.metadata_csv(split), dtype=str, keep_default_na=False)
            for row in table.to_dict("records"):
                clips[(layout.raw_dir / row["video_path"]).resolve()] = row
    tables = {}
    for name, fields in (("deployments", DEPLOYMENT_FIELDS), ("media", MEDIA_FIELDS)):
        table = pd.read_csv(root / SOURCE_DIR / f"{name}.csv", dtype=str, keep_default_na=False)
        table.columns = [str(column).strip() for column in table.columns]
        tables[name] = table.reindex(columns=list(fields), fill_value="").apply(lambda column: column.str.strip())
    descriptor = json.loads((root / SOURCE_DIR / "datapackage.json").read_text(encoding="utf-8"))
    return ImportedDataset(root, clips, tables["deployments"], tables["media"], descriptor)


class CamtrapExport:
    """Built before predicting (so a wrong ``package=`` fails at once); ``write`` makes the package."""

    def __init__(self, input_path: Path, dataset: ImportedDataset | None) -> None:
        self.input_root = input_path if input_path.is_dir() else input_path.parent
        self.dataset = dataset

    @classmethod
    def prepare(cls, input_path: str, package: str | None) -> CamtrapExport:
        if package:
            root = Path(package).expanduser()
            if root.name == SOURCE_DIR.name and root.parent.name == "raw":
                root = root.parent.parent
            if not (root / SOURCE_DIR / "datapackage.json").is_file():
                raise InputError(f"package={package}: not a dataset written by mmbehave.import_camtrap_dp (no "
                                 f"{SOURCE_DIR}/datapackage.json in it); give that command's output_dir= folder, or leave "
                                 "package unset for placeholder deployments and media.")
        else:
            root = find_imported_dataset(Path(input_path))
        return cls(Path(input_path).expanduser(), load_imported_dataset(root) if root else None)

    def write(self, folder: str | os.PathLike, rows: list[dict], classified_by: str, title: str = "Machine") -> Path:
        """``rows``: predict's (or review's) rows; a row may carry its own classificationMethod, classifiedBy and
        classificationTimestamp (a person's decision: human, the reviewer, when) and observationType."""
        folder = Path(folder).expanduser()
        now = iso_utc(pd.Timestamp.now(tz="UTC"))
        observations, media, deployments, taken = [], {}, {}, set()
        for row in rows:
            known = self.dataset.clips.get(Path(row["path"]).resolve()) if self.dataset else None
            clip = self._known_clip(known, media, deployments) if known else self._placeholder(row, media, deployments)
            species = str(row["species"])
            kind = row.get("observationType") or (species if species in OBSERVATION_TYPES and species != "animal"
                                                  else "animal")
            observation = dict.fromkeys(OBSERVATION_FIELDS, "")
            observation.update(clip, observationType=kind, scientificName="" if kind != "animal" else species,
                               behavior=row.get("behavior", ""),
                               classificationMethod=row.get("classificationMethod", "machine"),
                               classifiedBy=row.get("classifiedBy", classified_by),
                               classificationTimestamp=row.get("classificationTimestamp", now),
                               classificationProbability=row.get("species_prob", ""),
                               observationTags=(f"behaviorProbability:{row['behavior_prob']}"
                                                if "behavior_prob" in row else ""))
            observation["observationID"] = _unique(f"{clip['mediaID'] or clip['eventID']}-mmbehave", taken)
            observations.append(observation)
        self._fill_deployments(deployments, media)
        tables = {"observations": (observations, OBSERVATION_FIELDS), "media": (list(media.values()), MEDIA_FIELDS),
                  "deployments": (list(deployments.values()), DEPLOYMENT_FIELDS)}
        for name, (table_rows, fields) in tables.items():
            with atomic_path(folder / f"{name}.csv") as tmp:
                pd.DataFrame(table_rows, columns=list(fields)).to_csv(tmp, index=False)
        descriptor = self._descriptor(observations, list(deployments.values()), classified_by, now, title)
        write_text_atomic(folder / "datapackage.json", json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n")
        return folder

    def _known_clip(self, meta: dict, media: dict, deployments: dict) -> dict:
        """The observation's place and time from the imported dataset's metadata row; its media and deployment."""
        media_ids = [m for m in meta.get("mediaID", "").split("|") if m]
        source = self.dataset.media[self.dataset.media["mediaID"].isin(media_ids)]
        for record in source.to_dict("records"):
            media.setdefault(record["mediaID"], record)
        deployment = meta.get("deploymentID", "")
        found = self.dataset.deployments[self.dataset.deployments["deploymentID"] == deployment]
        deployments.setdefault(deployment, found.iloc[0].to_dict() if len(found) else None)
        burst = meta.get("mediaType") == "images"
        return {"deploymentID": deployment, "mediaID": "" if burst else "|".join(media_ids[:1]),
                "eventID": meta.get("eventID", "") or (meta["clip_id"].rsplit("/", 1)[-1] if burst else ""),
                "eventStart": meta.get("eventStart", ""), "eventEnd": meta.get("eventEnd", ""),
                "observationLevel": "event" if burst else "media"}

    def _placeholder(self, row: dict, media: dict, deployments: dict) -> dict:
        path = Path(row["path"])
        try:
            relative = path.resolve().relative_to(self.input_root.resolve()).as_posix()
        except ValueError:
            relative = path.name
        media_id = _unique(relative, set(media))
        time = iso_utc(pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC"))
        kind = "video" if str(row.get("has_video", True)).lower() != "false" else "audio"
        record = dict.fromkeys(MEDIA_FIELDS, "")
        record.update(mediaID=media_id, deploymentID=PLACEHOLDER_DEPLOYMENT, timestamp=time, filePath=relative,
                      filePublic="false", fileName=path.name,
                      fileMediatype=f"{kind}/{MEDIATYPES.get(path.suffix.lower(), path.suffix.lower().lstrip('.'))}")
        media[media_id] = record
        deployments.setdefault(PLACEHOLDER_DEPLOYMENT, None)
        return {"deploymentID": PLACEHOLDER_DEPLOYMENT, "mediaID": media_id, "eventID": "", "eventStart": time,
                "eventEnd": time, "observationLevel": "media"}

    @staticmethod
    def _fill_deployments(deployments: dict, media: dict) -> None:
        """A placeholder row for each deployment without one: at 0, 0, from its first to its last media file."""
        for deployment, row in deployments.items():
            if row is not None:
                continue
            times = sorted(m["timestamp"] for m in media.values() if m["deploymentID"] == deployment)
            row = dict.fromkeys(DEPLOYMENT_FIELDS, "")
            row.update(deploymentID=deployment, latitude=0, longitude=0, deploymentStart=times[0] if times else "",
                       deploymentEnd=times[-1] if times else "",
                       deploymentComments="placeholder written by mmbehave predict: location and dates unknown")
            deployments[deployment] = row

    def _descriptor(self, observations: list[dict], deployments: list[dict], classified_by: str, now: str,
                    title: str = "Machine") -> dict:
        source = self.dataset.descriptor if self.dataset else {}
        levels = sorted({o["observationLevel"] for o in observations})
        project = dict(source.get("project") or {"title": "mmbehave predictions", "samplingDesign": "opportunistic",
                                                 "captureMethod": ["activityDetection"], "individualAnimals": False})
        project["observationLevel"] = levels
        names = sorted({o["scientificName"] for o in observations if o["scientificName"]})
        known = {t.get("scientificName"): t for t in source.get("taxonomic") or [] if isinstance(t, dict)}
        times = sorted(t[:10] for o in observations for t in (o["eventStart"], o["eventEnd"]) if t)
        descriptor = {
            "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource", "format": "csv",
                           "mediatype": "text/csv", "encoding": "utf-8", "schema": schema_url(name)}
                          for name in RESOURCES],
            "profile": PROFILE_URL,
            "name": "mmbehave-predictions",
            "created": now,
            "title": f"{title} observations by {classified_by}"
                     + (f" of: {source['title']}" if source.get("title") else ""),
            "contributors": source.get("contributors") or [{"title": "mmbehave", "role": "contributor"}],
            "sources": [{"title": classified_by}],
            "project": project,
            "spatial": source.get("spatial") or _spatial(deployments),
            "temporal": {"start": times[0], "end": times[-1]} if times else source.get("temporal", {}),
            "taxonomic": [known.get(name) or {"scientificName": name} for name in names],
        }
        if source.get("licenses"):
            descriptor["licenses"] = source["licenses"]
        return descriptor


def _spatial(deployments: list[dict]) -> dict:
    """GeoJSON around the deployments (a point for one place); a point at 0, 0 when none has coordinates."""
    points = sorted({(float(d["longitude"]), float(d["latitude"])) for d in deployments
                     if _is_number(d["longitude"]) and _is_number(d["latitude"])})
    if len(points) <= 1:
        return {"type": "Point", "coordinates": list(points[0]) if points else [0, 0]}
    (west, east), (south, north) = ((min(p[i] for p in points), max(p[i] for p in points)) for i in (0, 1))
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                [west, south]]]}


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate
