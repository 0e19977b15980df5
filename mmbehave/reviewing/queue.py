"""What a reviewer goes through: predict's review queue (``<stem>_review.csv``, least certain first) or a whole
predictions table, with each clip's top answers for every head and where it was recorded.

    queue=<stem>_review.csv       its order; every head's answers from the sibling <stem>.csv when it is there
    predictions=<stem>.csv        ordered here, least certain first: by the margin between the top two answers
                                  of the first head with a top-k column

The classes a person may choose from are the model's (``checkpoint=``), else those the table names.
Decisions go to ``<stem>_reviewed.csv`` beside the table.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmbehave.core.errors import InputError

log = logging.getLogger(__name__)
CONTEXT_COLUMNS = ("site", "site_id", "camera", "cam_id", "deploymentID", "locationID", "event", "event_id",
                   "eventID", "timestamp")
TOP_COLUMN = re.compile(r"^(?P<head>.+)_top(?P<k>\d+)$")
QUEUE_SUFFIX, REVIEWED_SUFFIX = "_review", "_reviewed"


@dataclass(frozen=True)
class ReviewClip:
    index: int                                  # position in the queue (what the page's URLs name)
    path: str                                   # the media file, as the table wrote it
    clip_id: str
    answers: dict[str, list[tuple[str, float]]]  # head -> top answers, best first
    context: dict[str, str]                     # site, camera, event ... where the table has them
    model_sha256: str

    def to_json(self) -> dict:
        return {"index": self.index, "path": self.path, "name": Path(self.path).name, "clip_id": self.clip_id,
                "answers": {head: [[name, prob] for name, prob in top] for head, top in self.answers.items()},
                "context": self.context}


@dataclass(frozen=True)
class ReviewQueue:
    clips: list[ReviewClip]
    heads: list[str]                     # the queue's own head first
    classes: dict[str, list[str]]        # head -> every class a reviewer may pick
    table: Path                          # the queue (or predictions table) read
    reviewed_path: Path
    by_path: dict[str, ReviewClip] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_path.update({clip.path: clip for clip in self.clips})


def reviewed_path_for(table: Path) -> Path:
    """``<stem>_review.csv`` and ``<stem>.csv`` both -> ``<stem>_reviewed.csv``."""
    stem = table.stem[: -len(QUEUE_SUFFIX)] if table.stem.endswith(QUEUE_SUFFIX) else table.stem
    return table.with_name(f"{stem}{REVIEWED_SUFFIX}.csv")


def predictions_beside(queue: Path) -> Path | None:
    """predict writes ``<stem>.csv`` beside ``<stem>_review.csv``: every head's answers are there."""
    if not queue.stem.endswith(QUEUE_SUFFIX):
        return None
    sibling = queue.with_name(f"{queue.stem[: -len(QUEUE_SUFFIX)]}.csv")
    return sibling if sibling.is_file() else None


def read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{what}={path}: no such file. Give the <stem>_review.csv (or <stem>.csv) that "
                         "python -m mmbehave.predict ... review=true wrote.")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in ("path", "clip_id") if column not in table.columns]
    if missing:
        raise InputError(f"{what}={path}: missing column(s) {', '.join(missing)}; found {', '.join(table.columns)}. "
                         "It must be a table python -m mmbehave.predict wrote.")
    if table.empty:
        raise InputError(f"{what}={path}: the table has no clips to review.")
    return table


def parse_top(cell: str) -> list[tuple[str, float]]:
    """``deer:0.81|boar:0.12`` -> [(deer, 0.81), (boar, 0.12)]."""
    answers = []
    for part in filter(None, cell.split("|")):
        name, _, prob = part.rpartition(":")
        answers.append((name, float(prob)))
    return answers


def top_columns(table: pd.DataFrame) -> dict[str, str]:
    """{head: its top-k column}."""
    return {match["head"]: column for column in table.columns if (match := TOP_COLUMN.match(column))}


def read_queue(queue: Path | None, predictions: Path | None, classes: dict[str, list[str]] | None = None) -> ReviewQueue:
    """The clips in review order, every head's answers, the classes to pick from, the decisions' file."""
    if queue is None and predictions is None:
        raise InputError("give queue=<stem>_review.csv (predict review=true writes it) or predictions=<stem>.csv.")
    if queue is not None:
        ordered = read_table(queue, "queue")
        if "head" not in ordered.columns:
            raise InputError(f"queue={queue}: no 'head' column: is it a review queue? A predictions table is "
                             "given as predictions=<table>.")
        full = read_table(predictions, "predictions") if predictions else None
        if full is None and (beside := predictions_beside(queue)) is not None:
            full = read_table(beside, "predictions")
        first_head = ordered["head"].iloc[0]
        table_path = queue
    else:
        full = read_table(predictions, "predictions")
        tops = top_columns(full)
        if not tops:
            raise InputError(f"predictions={predictions}: no <head>_top<k> column to order the clips by; predict "
                             "with top_k=2 or more (the default is 3).")
        first_head = next(iter(tops))
        ordered = full.assign(_margin=[margin(parse_top(cell)) for cell in full[tops[first_head]]])
        ordered = ordered.sort_values(["_margin", "path"], kind="stable")
        table_path = predictions
    by_path = {row["path"]: row for _, row in full.iterrows()} if full is not None else {}
    tops = {**top_columns(ordered), **(top_columns(full) if full is not None else {})}  # the tables' columns, once
    clips = [clip_of(index, row, by_path.get(row["path"]), tops)
             for index, (_, row) in enumerate(ordered.iterrows())]
    heads = [first_head, *sorted({head for clip in clips for head in clip.answers} - {first_head})]
    known = classes or {}
    named = {head: sorted({name for clip in clips for name, _ in clip.answers.get(head, ())}) for head in heads}
    if not classes:
        log.warning("No checkpoint= given: a reviewer picks among the classes the table names (%s); give the model's "
                    "checkpoint to pick from all of them.", ", ".join(f"{h}: {len(n)}" for h, n in named.items()))
    picked = {head: list(known.get(head) or named[head]) for head in heads}
    return ReviewQueue(clips, heads, picked, table_path, reviewed_path_for(table_path))


def margin(answers: list[tuple[str, float]]) -> float:
    probs = [prob for _, prob in answers]
    return probs[0] - (probs[1] if len(probs) > 1 else 0.0) if probs else 1.0


def clip_of(index: int, row: pd.Series, full: pd.Series | None, tops: dict[str, str]) -> ReviewClip:
    """``tops``: {head: its top-k column} of the queue and the predictions table; the full row's cell first."""
    source = full if full is not None else row
    answers = {head: parse_top(source[column] if column in source else row[column]) for head, column in tops.items()
               if column in source or column in row}
    context = {column: source[column] for column in CONTEXT_COLUMNS if column in source and source[column]}
    return ReviewClip(index, row["path"], row["clip_id"], answers, context,
                      str(source.get("model_sha256", "") or row.get("model_sha256", "")))
