"""Clips grouped into events, one row per event: what ecologists count is visits, not files.

    event_by=<column> event_table=<csv>   clips whose rows in the table share that column's value are one event
                                          (the table names clips by ``path``, absolute or relative to input=,
                                          or else by ``clip_id``, the file name without extension)
    event_by=<seconds>                    clips in one folder are one event while the gap between consecutive
                                          clips' times (``clip_times``: creation_time, else mtime) is <= that

A camera trap writes a visit as several clips in a row; an event's answer is the mean of its clips'
probabilities per head, labelled like a clip's (``uncertain`` below the threshold). Events are planned from the
file list before any clip is decoded, so a bad table fails at once and a clip that cannot be read does not cut
an event in two; it is only missing from the event's clips.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmbehave.core.errors import ConfigError
from mmbehave.predicting.answers import answer_columns, combine, wide_columns
from mmbehave.predicting.clip_times import ClipTime, clip_time, iso_time

log = logging.getLogger(__name__)
UNLISTED = "unlisted:"  # event id prefix of a clip the event table has no row for: an event of its own
KEY_COLUMNS = ("path", "clip_id")


@dataclass(frozen=True)
class EventGrouping:
    gap_seconds: float | None = None
    column: str | None = None
    table: Path | None = None
    values: dict[str, str] = field(default_factory=dict)   # the table's key (path or clip_id) -> event value
    key: str = "path"                                      # which of KEY_COLUMNS the table names clips by
    rows: dict[str, int] = field(default_factory=dict)     # the table's key -> its line in the file (header: 1)


@dataclass(frozen=True)
class EventPlan:
    event_of: dict[Path, str]       # every clip file -> its event id
    times: dict[Path, ClipTime]


def read_event_grouping(event_by: Any, event_table: Any) -> EventGrouping | None:
    """Check ``event_by`` / ``event_table`` and read the table. Raises ConfigError naming the key and the fix."""
    if event_by is None:
        if event_table:
            raise ConfigError(f"event_table={event_table} is used only with event_by=<one of its columns>; add it.")
        return None
    if isinstance(event_by, Real) and not isinstance(event_by, bool):
        if event_table:
            raise ConfigError(f"event_table={event_table} is used only with event_by=<column>; event_by={event_by} "
                              "groups clips by time gap. Drop one of them.")
        if event_by < 0:
            raise ConfigError(f"event_by={event_by}: a gap in seconds must be >= 0 (or a column of event_table=).")
        return EventGrouping(gap_seconds=float(event_by))
    if not isinstance(event_by, str) or not event_by:
        raise ConfigError(f"event_by={event_by}: use a gap in seconds (event_by=60) or a column name with "
                          "event_table=<csv>.")
    if not event_table:
        raise ConfigError(f"event_by={event_by} names a column: add event_table=<csv with clip_id or path and "
                          f"{event_by}>, or give a gap in seconds (event_by=60).")
    return _read_table(event_by, Path(str(event_table)).expanduser())


def _read_table(column: str, table: Path) -> EventGrouping:
    if not table.is_file():
        raise ConfigError(f"event_table={table}: no such file; give a CSV with clip_id or path and {column}.")
    try:
        frame = pd.read_csv(table, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ConfigError(f"event_table={table}: not a readable CSV ({' '.join(str(error).split())}).") from error
    key = next((name for name in KEY_COLUMNS if name in frame.columns), None)
    if key is None or column not in frame.columns:
        missing = " and ".join(name for name, absent in ((" or ".join(KEY_COLUMNS), key is None),
                                                         (column, column not in frame.columns)) if absent)
        raise ConfigError(f"event_table={table}: no {missing} column (it has {', '.join(frame.columns)}); "
                          f"event_by= must name one of its columns.")
    pairs = frame[[key, column]].drop_duplicates()
    clashing = pairs[key][pairs[key].duplicated()].tolist()
    if clashing:
        raise ConfigError(f"event_table={table}: {key} {clashing[0]} has more than one {column}; give each clip one.")
    rows = {value: index + 2 for index, value in frame[key].items()}
    return EventGrouping(column=column, table=table, values=dict(zip(pairs[key], pairs[column])), key=key,
                         rows=rows)


def plan_events(clips: list[Path], grouping: EventGrouping, input_root: Path) -> EventPlan:
    """Each clip file's event id (and recording time), from the file list alone."""
    times = {path: clip_time(path) for path in clips}
    if grouping.gap_seconds is not None:
        return EventPlan(_events_by_gap(clips, times, grouping.gap_seconds), times)
    return EventPlan(_events_by_column(clips, grouping, input_root), times)


def _events_by_gap(clips: list[Path], times: dict[Path, ClipTime], gap: float) -> dict[Path, str]:
    runs: list[list[Path]] = []
    by_folder: dict[Path, list[Path]] = defaultdict(list)
    for path in clips:
        by_folder[path.parent].append(path)
    for folder_clips in by_folder.values():
        folder_clips.sort(key=lambda path: (times[path].time, str(path)))
        runs.append([folder_clips[0]])
        for before, path in zip(folder_clips, folder_clips[1:]):
            if (times[path].time - times[before].time).total_seconds() > gap:
                runs.append([])
            runs[-1].append(path)
    runs.sort(key=lambda run: (times[run[0]].time, str(run[0])))  # numbered in time order, across folders
    digits = max(4, len(str(len(runs))))
    return {path: f"event_{number:0{digits}d}" for number, run in enumerate(runs, 1) for path in run}


def _events_by_column(clips: list[Path], grouping: EventGrouping, input_root: Path) -> dict[Path, str]:
    if grouping.key == "path":
        listed = {_resolve(key, input_root): value for key, value in grouping.values.items()}
        keys = {path: path.resolve() for path in clips}
    else:
        listed = grouping.values
        keys = {path: path.stem for path in clips}
        stems = pd.Series([path.stem for path in clips])
        shared = sorted(set(stems[stems.duplicated()]) & set(listed))
        if shared:
            raise ConfigError(f"event_table={grouping.table}: clip_id {shared[0]} matches more than one clip file "
                              "(same name in different folders); give the table a path column instead.")
    event_of, unlisted = {}, []
    for path in clips:
        value = listed.get(keys[path], "")
        if value == "":
            unlisted.append(path)
            value = UNLISTED + _relative(path, input_root)
        event_of[path] = value
    if unlisted:
        log.warning(
            "event_table=%s has no %s for %d clip(s) (%s%s); each is an event of its own (event_id %s<path>).",
            grouping.table, grouping.column, len(unlisted), ", ".join(map(str, unlisted[:3])),
            ", ..." if len(unlisted) > 3 else "", UNLISTED)
    matched = set(keys.values())
    written = {(_resolve(key, input_root) if grouping.key == "path" else key): key for key in grouping.values}
    unknown = [key for found, key in written.items() if found not in matched]
    if unknown:  # a typo in the table, or clips not given to this run: the table does not say what it seems to
        named = [f"row {grouping.rows.get(key, '?')}: {key}" for key in unknown[:3]]
        log.warning("event_table=%s: %d row(s) name no clip of input= (%s%s); they are ignored. Check their %s.",
                    grouping.table, len(unknown), "; ".join(named), "; ..." if len(unknown) > 3 else "", grouping.key)
    return event_of


def _resolve(listed: str, input_root: Path) -> Path:
    path = Path(listed).expanduser()
    return (path if path.is_absolute() else input_root / path).resolve()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def event_rows(plan: EventPlan, clip_probs: dict[Path, dict[str, np.ndarray]], names: dict[str, list[str]],
               thresholds: dict, wide: bool, provenance: dict[str, str], heads) -> list[dict]:
    """One row per event with at least one predicted clip, in time order: its clips, times and answer."""
    members: dict[str, list[Path]] = defaultdict(list)
    for path in clip_probs:
        members[plan.event_of[path]].append(path)
    rows = []
    for event_id, paths in members.items():
        paths.sort(key=lambda path: (plan.times[path].time, str(path)))
        probs = combine([clip_probs[path] for path in paths], "mean")
        row = {"event_id": event_id, "clips": len(paths), "first_clip": str(paths[0]), "last_clip": str(paths[-1]),
               "start_time": iso_time(plan.times[paths[0]].time), "end_time": iso_time(plan.times[paths[-1]].time),
               "time_source": "+".join(sorted({plan.times[path].source for path in paths})),
               **answer_columns(heads, names, probs, thresholds)}
        if wide:
            row.update(wide_columns(names, probs))
        rows.append({**row, **provenance})
    return sorted(rows, key=lambda row: (row["start_time"], row["event_id"]))
