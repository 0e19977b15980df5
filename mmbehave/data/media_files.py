"""Which files are clips: the containers camera traps, phones and sound recorders write, found in a folder.

    find_media(folder) ─► MediaSearch(files: sorted clip paths, skipped: {".txt": 3, ".jpg": 120, ...})

Extensions are matched case-insensitively (cameras write ``.AVI``, ``.ASF``, ``.MP4``); hidden files (``._x.mp4``
from macOS, ``.x.tmp``) are never clips. What the search does not take is counted by extension, so a log line can
say what was left out instead of dropping it without a word. predict's folder search and the Camtrap DP
importer's media kinds use these lists.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

# Video containers of a decade of camera traps, action cameras and phones: AVI (MJPEG, MPEG-4 part 2), ASF / WMV
# (MS-MPEG-4, older Reconyx and Bushnell), MOV / MP4 / M4V (H.264 / HEVC), MTS / M2TS (AVCHD camcorders), 3GP
# (phones), MKV, MPG / MPEG (MPEG-1/2), WebM.
VIDEO_EXTENSIONS = (".avi", ".asf", ".wmv", ".mov", ".mp4", ".m4v", ".mts", ".m2ts", ".3gp", ".mkv", ".mpg",
                    ".mpeg", ".webm")
# Sound recorders (AudioMoth, Song Meter) and exported tracks.
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".wma")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS


@dataclass
class MediaSearch:
    files: list[Path]
    skipped: Counter = field(default_factory=Counter)   # extension (lower case, "" for none) -> files not taken

    def skipped_text(self, shown: int = 6) -> str:
        """``3 .txt, 120 .jpg`` (the most frequent first), or empty."""
        items = [f"{count} {ext or '(no extension)'}" for ext, count in self.skipped.most_common()]
        return ", ".join(items[:shown]) + (f", ... ({len(items) - shown} more kinds)" if len(items) > shown else "")


def normalised_extensions(extensions: Iterable[str]) -> set[str]:
    """``["MP4", ".avi"]`` -> {".mp4", ".avi"}."""
    return {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}


def find_media(folder: Path, extensions: Iterable[str] = MEDIA_EXTENSIONS, recursive: bool = True) -> MediaSearch:
    """The clips under ``folder`` (sorted, so that every run and shard sees one order) and what was left out."""
    wanted = normalised_extensions(extensions)
    found, skipped = [], Counter()
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    for path in candidates:
        if not path.is_file():
            continue
        if path.name.startswith("."):
            continue  # hidden: editor and OS droppings, temp files of an interrupted copy
        suffix = path.suffix.lower()
        if suffix in wanted:
            found.append(path)
        else:
            skipped[suffix] += 1
    return MediaSearch(sorted(found), skipped)


def media_kind(path: Path | str) -> str | None:
    """video | audio by extension, or None."""
    suffix = Path(path).suffix.lower()
    return "video" if suffix in VIDEO_EXTENSIONS else "audio" if suffix in AUDIO_EXTENSIONS else None
