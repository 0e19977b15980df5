"""What a predict run has done so far, kept so that it survives a crash, Ctrl-C, SIGTERM or ``kill -9``.

    <stem>_probabilities.jsonl   one line per predicted clip: path, file size and mtime (the key: a changed
                                 file is predicted again), modalities, windows, the probabilities per segment
    <stem>_errors.csv            one row per clip that could not be read: path, reason

Both are append-only: each batch's lines go out in one write and are flushed to disk, so a killed run leaves
whole lines. A line cut by a crash or a full disk in the middle of a write is cut off the file (``repair_torn_tail``)
before the next run appends, so that run's first line is never glued onto it, and its clip is predicted again. Running
the same command again skips every clip whose path and key are already there and appends the rest; the tables
(``output=``, segments, events, review) are rebuilt from these lines at the end, so they are the same row for
row as one uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)


def file_key(path: Path) -> str:
    """``<bytes>:<mtime ns>``: a clip replaced or edited since it was predicted is predicted again."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


@dataclass
class ClipRecord:
    path: str
    key: str
    has_video: bool
    has_audio: bool
    windows: list[tuple[float, float | None]]        # (start_s, end_s) per segment; end None: the whole clip
    probs: list[dict[str, np.ndarray]]               # {head: float32 probabilities} per segment
    model: str = ""                                  # the model file's SHA-256 prefix: another model predicts anew
    shard: str = ""                                  # "i/N" of a sharded run (shards.py); "": the whole input

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "key": self.key, "model": self.model,
                           **({"shard": self.shard} if self.shard else {}), "has_video": self.has_video,
                           "has_audio": self.has_audio, "windows": [list(w) for w in self.windows],
                           "probs": [{head: values.tolist() for head, values in probs.items()} for probs in self.probs]})

    @classmethod
    def from_json(cls, line: str) -> ClipRecord:
        data = json.loads(line)
        return cls(data["path"], data["key"], bool(data["has_video"]), bool(data["has_audio"]),
                   [(float(s), None if e is None else float(e)) for s, e in data["windows"]],
                   [{head: np.asarray(values, dtype=np.float32) for head, values in probs.items()}
                    for probs in data["probs"]], str(data.get("model", "")), str(data.get("shard", "")))


def beside_output(output: Path, name: str) -> Path:
    """``<stem>_<name>`` beside an output table, or ``<name>`` inside an output package folder."""
    return output.with_name(f"{output.stem}_{name}") if output.suffix.lower() == ".csv" else output / name


def state_paths(output: Path) -> tuple[Path, Path]:
    """(<stem>_probabilities.jsonl, <stem>_errors.csv) beside the output table (or inside a package folder)."""
    return beside_output(output, "probabilities.jsonl"), beside_output(output, "errors.csv")


def append_whole(path: Path, text: str) -> None:
    """Append ``text`` (whole lines) in one write, then fsync: a kill leaves all of it or none of it on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = 0
        while written < len(data):  # a regular file takes it at once; loop only for the exotic short write
            written += os.write(descriptor, data[written:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def repair_torn_tail(path: Path) -> int:
    """Cut an unfinished last line (no newline: a write cut short) off ``path``; the bytes dropped (0: whole).
    Appending after it would glue the next record onto it and lose both clips' lines as one unreadable line."""
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with path.open("rb+") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(size - 1)
        if stream.read(1) == b"\n":
            return 0
        kept = last_newline_end(stream, size)
        stream.truncate(kept)
        stream.flush()
        os.fsync(stream.fileno())
    log.warning("%s ended in an unfinished line (%d bytes, a write cut short); it was cut off and its clip is "
                "predicted again.", path, size - kept)
    return size - kept


def last_newline_end(stream, size: int, chunk: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0: none), read backwards in chunks."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        stream.seek(start)
        found = stream.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def whole_lines(path: Path) -> Iterator[str]:
    """The file's complete lines; a last line without its newline (a write cut short) is left out."""
    if not path.is_file():
        return
    with path.open("r", encoding="utf-8", newline="") as stream:
        for line in stream:
            if line.endswith("\n"):
                yield line


def read_records(path: Path) -> dict[str, ClipRecord]:
    """{path: its latest record} (a clip predicted again after it changed: the newer line wins)."""
    records = {}
    for number, line in enumerate(whole_lines(path), 1):
        try:
            record = ClipRecord.from_json(line)
        except (ValueError, KeyError, TypeError):
            log.warning("%s, line %d is not a prediction record; it is ignored.", path, number)
            continue
        records[record.path] = record
    return records


def append_records(path: Path, records: Iterable[ClipRecord]) -> None:
    text = "".join(record.to_json() + "\n" for record in records)
    if text:
        append_whole(path, text)


def append_errors(path: Path, failures: Iterable[tuple[str, str]]) -> None:
    """Rows (path, reason); the header first when the file is new."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if not path.is_file() or path.stat().st_size == 0:
        writer.writerow(["path", "reason"])
    for row in failures:
        writer.writerow(row)
    append_whole(path, buffer.getvalue())


def read_errors(path: Path) -> dict[str, str]:
    """{path: reason} of the whole rows of an errors table (the latest reason per path)."""
    lines = list(whole_lines(path))
    return {row[0]: row[1] for row in csv.reader(lines[1:]) if len(row) == 2} if lines else {}
