"""When a clip was recorded, for grouping clips into events by the gaps between them.

The container's ``creation_time`` tag (most camera traps and phones write it into MP4 / MOV) where the file has
one, else the file's modification time, which copying with ``cp -p`` / rsync keeps but a plain copy resets.
Both are taken as UTC, as the camera wrote them: a camera set to local time gives local times, consistently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import pandas as pd

CONTAINER = "creation_time"
MTIME = "mtime"


@dataclass(frozen=True)
class ClipTime:
    time: pd.Timestamp   # UTC
    source: str          # CONTAINER or MTIME


def clip_time(path: Path) -> ClipTime:
    tagged = _creation_time(path)
    if tagged is not None:
        return ClipTime(tagged, CONTAINER)
    return ClipTime(pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC"), MTIME)


def _creation_time(path: Path) -> pd.Timestamp | None:
    try:
        with av.open(str(path)) as container:
            tags = [container.metadata, *(stream.metadata for stream in container.streams)]
            text = next((tag["creation_time"] for tag in tags if tag.get("creation_time")), None)
    except (av.error.FFmpegError, UnicodeDecodeError, OSError):
        return None  # an unreadable file still has an mtime; it is reported when it fails to decode
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        return None
    if stamp.year < 1971:  # an unset camera clock (the MP4 epoch 1904, or 1970) is no time at all
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def iso_time(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
