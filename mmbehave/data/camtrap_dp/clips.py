"""Which clips a Camtrap DP package makes, labelled how, and what was left out and why.

    observation ─► label (species from scientificName, else observationType; behavior, dominant first)
                ─► the media it covers: level media = its mediaID; level event = the deployment's media
                   whose timestamp lies within eventStart-eventEnd
    media file  ─► the observations of its preferred level (``prefer_level``), else of the other level;
                   they must agree on the label; the file must be local (filePath / fileName under media_dir)
    clips       ─► a video or audio file is a clip; still images are grouped into one clip per event
                   (level event: per observation; level media: per eventID, else per image), in time order

Every observation and every media row ends in the ``ImportReport`` once: used, or skipped with its reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from mmbehave.core.errors import ConfigError
from mmbehave.core.settings import typed_view
from mmbehave.data.camtrap_dp.package import (
    OBSERVATION_TYPES,
    CamtrapPackage,
    is_remote,
    media_kind,
)
from mmbehave.data.layout import SPLITS

EXAMPLES_SHOWN = 3


@dataclass(frozen=True)
class PreferLevel:
    image: Literal["event", "media"] = "event"     # level whose observations label image bursts
    video: Literal["event", "media"] = "media"     # level whose observations label video and audio files


@dataclass(frozen=True)
class ImportRules:
    species_fallback: Literal["observation_type", "skip"] = "observation_type"
    missing_behavior: str | None = None            # None: skip animal observations without a behavior
    non_animal_behavior: str | None = "none"       # behavior of blanks / humans / vehicles without one
    skip_observation_types: tuple[str, ...] = ("unclassified",)
    prefer_level: PreferLevel = PreferLevel()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ImportRules:
        """From conf/import_camtrap_dp.yaml's keys; a key left out takes the default above."""
        keys = [f.name for f in dataclasses.fields(cls)]
        rules = typed_view(cls, {key: cfg[key] for key in keys if key in cfg}, "", defaults=True)
        unknown = [t for t in rules.skip_observation_types if t not in OBSERVATION_TYPES]
        if unknown:
            raise ConfigError(f"skip_observation_types has {', '.join(unknown)}; Camtrap DP observationType is one of "
                              f"{', '.join(OBSERVATION_TYPES)}.")
        return dataclasses.replace(rules, missing_behavior=_label_or_none(rules.missing_behavior),
                                   non_animal_behavior=_label_or_none(rules.non_animal_behavior))


def _label_or_none(value) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


class ImportReport:
    """Counts per (item, status, reason), with a few example ids each; one row per outcome in the table."""

    COLUMNS = ("item", "status", "reason", "count", "examples")

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str, str], list[str]] = defaultdict(list)

    def add(self, item: str, status: str, reason: str, ident: str) -> None:
        self.ids[(item, status, reason)].append(ident)

    def count(self, item: str, status: str, reason: str | None = None) -> int:
        return sum(len(ids) for (i, s, r), ids in self.ids.items() if i == item and s == status and reason in (None, r))

    def table(self) -> pd.DataFrame:
        order = {"observations": 0, "media": 1, "clips": 2}
        rows = [{"item": i, "status": s, "reason": r, "count": len(ids), "examples": " ".join(ids[:EXAMPLES_SHOWN])}
                for (i, s, r), ids in self.ids.items()]
        splits = {split: rank for rank, split in enumerate(SPLITS)}  # clips: train, val, test; others: most first
        rows.sort(key=lambda row: (order.get(row["item"], 3), row["status"] == "skipped",
                                   splits.get(row["reason"].split(":")[0], -row["count"]), row["reason"]))
        return pd.DataFrame(rows, columns=list(self.COLUMNS))

    def format(self) -> str:
        lines = ["| item | status | count | reason | examples |", "|---|---|---|---|---|"]
        lines += [f"| {row.item} | {row.status} | {row.count} | {row.reason} | {row.examples} |"
                  for row in self.table().itertuples()]
        return "\n".join(lines)


@dataclass
class Clip:
    kind: str                                # video | audio | images (a burst of stills)
    deployment_id: str
    media_ids: list[str]                     # in time order (the frames of a burst)
    files: list[Path]
    species: str
    behavior: str
    level: str                               # observationLevel of the observations that labelled it
    observation_ids: list[str]
    event_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    clip_id: str = ""
    split: str = ""
    video_path: str = ""                     # where it was written, relative to raw/


def observation_label(row: Mapping[str, str], rules: ImportRules) -> tuple[tuple[str, str] | None, str]:
    """((species, behavior), "") or (None, why the observation is left out)."""
    kind = row["observationType"]
    if kind in rules.skip_observation_types:
        return None, f"observationType {kind} (skip_observation_types)"
    species, from_type = row["scientificName"], False
    if not species:
        if kind in ("animal", ""):
            return None, "animal without scientificName"
        if rules.species_fallback == "skip":
            return None, f"no scientificName, observationType {kind} (species_fallback=skip)"
        species, from_type = kind, True
    behavior = row["behavior"].split("|", 1)[0].strip()  # a list, dominant behaviour first
    if not behavior:
        behavior = (rules.non_animal_behavior if from_type else None) or rules.missing_behavior or ""
    if not behavior:
        return None, "no behavior (missing_behavior=null)"
    return (species, behavior), ""


def locate_file(row: Mapping[str, str], media_dir: Path) -> tuple[Path | None, str]:
    """The local file of a media row (filePath, else fileName, under media_dir), or (None, why not)."""
    file_path, file_name = row["filePath"], row["fileName"]
    candidates = []
    for given in (file_path, file_name):
        if not given or is_remote(given):
            continue
        parts = PurePosixPath(given.replace("\\", "/"))
        if parts.is_absolute() or ".." in parts.parts:
            return None, "filePath is absolute or contains '..' (must be relative to the package)"
        candidates.append(media_dir / parts)
    for candidate in candidates:
        if candidate.is_file():
            return candidate, ""
    if is_remote(file_path):
        return None, "remote file (http URL, not downloaded)"
    return None, "file not found under media_dir"


def plan_clips(package: CamtrapPackage, rules: ImportRules, media_dir: Path, report: ImportReport) -> list[Clip]:
    media, observations = package.media, package.observations
    labels: dict[int, tuple[str, str]] = {}
    for index, row in zip(observations.index, observations.to_dict("records")):
        label, reason = observation_label(row, rules)
        if label is None:
            report.add("observations", "skipped", reason, row["observationID"])
        else:
            labels[index] = label

    claims = _claims(package, labels, report)  # media row -> level -> [observation rows]
    outcome: dict[int, str] = {}               # observation row -> what became of it (the best outcome counts)
    chosen: dict[int, tuple[str, list[int], Path]] = {}  # media row -> (level, observations, file)
    for index, row in zip(media.index, media.to_dict("records")):
        by_level = claims.get(index)
        if not by_level:
            report.add("media", "skipped", "no usable observation (none, or all skipped)", row["mediaID"])
            continue
        kind = media_kind(row["fileMediatype"])
        reason, level = "", ""
        if kind is None:
            reason = f"fileMediatype {row['fileMediatype'] or '(blank)'} is not image/*, video/* or audio/*"
        else:
            preferred = rules.prefer_level.image if kind == "image" else rules.prefer_level.video
            level = preferred if by_level.get(preferred) else _other(preferred)
            for other in by_level.get(_other(level), []):
                _note(outcome, other, "superseded")
            if len({labels[o] for o in by_level[level]}) > 1:
                reason = "its observations disagree on species or behavior"
        path = None
        if not reason:
            path, reason = locate_file(row, media_dir)
        if reason:
            report.add("media", "skipped", reason, row["mediaID"])
            for obs in by_level.get(level) or [o for group in by_level.values() for o in group]:
                _note(outcome, obs, "conflict" if "disagree" in reason else "unavailable")
            continue
        chosen[index] = (level, by_level[level], path)
        report.add("media", "used", "", row["mediaID"])
        for obs in by_level[level]:
            _note(outcome, obs, "used")

    reasons = {"used": "", "conflict": "disagrees with another observation of the same media",
               "superseded": "its media are labelled at the other observationLevel (prefer_level)",
               "unavailable": "its media files are not available (see media)"}
    for obs, result in outcome.items():
        report.add("observations", "used" if result == "used" else "skipped", reasons[result],
                   observations.at[obs, "observationID"])
    return _group(package, chosen, labels)


def _other(level: str) -> str:
    return "event" if level == "media" else "media"


def _note(outcome: dict[int, str], obs: int, result: str) -> None:
    rank = ("used", "conflict", "superseded", "unavailable")
    if obs not in outcome or rank.index(result) < rank.index(outcome[obs]):
        outcome[obs] = result


def _claims(package: CamtrapPackage, labels: dict[int, tuple[str, str]],
            report: ImportReport) -> dict[int, dict[str, list[int]]]:
    """media row -> observationLevel -> the labelled observations that cover it."""
    media, observations = package.media, package.observations
    row_of = {media_id: index for index, media_id in zip(media.index, media["mediaID"])}
    timeline: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for deployment, group in media.groupby("deploymentID", sort=False):
        group = group.sort_values("time", kind="stable")
        timeline[deployment] = (group["time"].to_numpy(dtype="datetime64[ns]"), group.index.to_numpy())
    claims: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for obs in labels:
        row = observations.loc[obs]
        if row["observationLevel"] == "media":
            covered = [row_of[row["mediaID"]]] if row["mediaID"] in row_of else []
            missing = "mediaID blank or not in media.csv"
        else:
            times, rows = timeline.get(row["deploymentID"], (np.array([], "datetime64[ns]"), np.array([], int)))
            start, end = (np.datetime64(t.tz_convert(None).to_datetime64(), "ns") for t in (row["start"], row["end"]))
            covered = list(rows[np.searchsorted(times, start, "left"):np.searchsorted(times, end, "right")])
            missing = "no media of its deployment between eventStart and eventEnd"
        if not covered:
            report.add("observations", "skipped", missing, row["observationID"])
        for media_row in covered:
            claims[media_row][row["observationLevel"]].append(obs)
    return claims


def _group(package: CamtrapPackage, chosen: dict[int, tuple[str, list[int], Path]],
           labels: dict[int, tuple[str, str]]) -> list[Clip]:
    media, observations = package.media, package.observations
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, (level, obs, _) in chosen.items():
        row = media.loc[index]
        kind = media_kind(row["fileMediatype"])
        event_ids = [observations.at[o, "eventID"] for o in obs if observations.at[o, "eventID"]]
        if kind != "image":
            key = (kind, row["mediaID"])
        elif level == "event":
            key = ("images", tuple(sorted(obs)))
        else:
            key = ("images", event_ids[0] if event_ids else row["mediaID"])
        groups[(row["deploymentID"], labels[obs[0]], *key)].append(index)

    clips, taken = [], set()
    for (deployment, (species, behavior), kind, *_), rows in groups.items():
        rows = sorted(rows, key=lambda r: (media.at[r, "time"], media.at[r, "fileName"], media.at[r, "mediaID"]))
        obs = sorted({o for r in rows for o in chosen[r][1]})
        obs_ids = [observations.at[o, "observationID"] for o in obs]
        event_id = next((observations.at[o, "eventID"] for o in obs if observations.at[o, "eventID"]), "")
        media_ids = [media.at[r, "mediaID"] for r in rows]
        name = media_ids[0] if kind != "images" else (event_id or (obs_ids[0] if chosen[rows[0]][0] == "event"
                                                                    else media_ids[0]))
        event_id = event_id or (name if kind == "images" else "")  # a burst is an event: named, if only by its clip
        clip = Clip(kind, deployment, media_ids, [chosen[r][2] for r in rows], species, behavior, chosen[rows[0]][0],
                    obs_ids, event_id, media.at[rows[0], "time"], media.at[rows[-1], "time"])
        clip.clip_id = _unique(f"{_safe(deployment)}/{_safe(name)}", taken)
        clips.append(clip)
    return sorted(clips, key=lambda c: c.clip_id)


def _safe(text: str) -> str:
    """An id as a file name: letters, digits, '.', '-', '_' (others become '_'), never hidden."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate.lower() in taken:  # case-insensitive file systems
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate.lower())
    return candidate

