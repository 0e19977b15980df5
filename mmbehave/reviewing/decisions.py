"""A person's decisions on the queue's clips: ``<stem>_reviewed.csv``, one row per clip and head, rewritten
atomically under a lock on every decision, so that a restart continues where the reviewer stopped and two
browser tabs on one queue keep each other's decisions (each write re-reads the file and replaces only its row).

    clip_id, path, head, model_answer, answer, decision, reviewer, time, model_sha256 [, site, camera, ...]

``decision``: accept (the model's answer), relabel (another class), unsure (left out of training), empty
(nothing there: the heads' empty class at import, when they have one). Nothing else is ever written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import InputError
from mmbehave.core.locks import exclusive
from mmbehave.data.metadata import csv_row
from mmbehave.reviewing.queue import ReviewClip, ReviewQueue

COLUMNS = ("clip_id", "path", "head", "model_answer", "answer", "decision", "reviewer", "time", "model_sha256")
ACCEPT, RELABEL, UNSURE, EMPTY = "accept", "relabel", "unsure", "empty"
DECISIONS = (ACCEPT, RELABEL, UNSURE, EMPTY)
WHOLE_CLIP = (UNSURE, EMPTY)  # said of the clip, so written for every head
ROWS_NAMED = 5


@dataclass(frozen=True)
class Decision:
    clip: ReviewClip
    head: str
    decision: str
    answer: str
    reviewer: str

    def row(self) -> dict[str, str]:
        top = self.clip.answers.get(self.head) or [("", 0.0)]
        return {"clip_id": self.clip.clip_id, "path": self.clip.path, "head": self.head, "model_answer": top[0][0],
                "answer": self.answer, "decision": self.decision, "reviewer": self.reviewer,
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "model_sha256": self.clip.model_sha256, **self.clip.context}


def read_decisions(path: Path) -> pd.DataFrame:
    """The file as text cells (an empty table with the columns when there is none yet)."""
    if not path.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; a reviewed table has {', '.join(COLUMNS)}.")
    return table


def named_rows(rows: list[int], what: str) -> str:
    shown = ", ".join(str(csv_row(row)) for row in rows[:ROWS_NAMED])
    more = f" (+{len(rows) - ROWS_NAMED} more)" if len(rows) > ROWS_NAMED else ""
    return f"row(s) {shown}{more} {what}"


def check_decisions(table: pd.DataFrame, path: Path, queue: ReviewQueue, allow_new_classes: bool = False) -> None:
    """Refuse, in one line naming the rows, decisions on clips the queue does not hold, on heads the model does not
    have, of kinds not known, or naming classes the model does not know (unless ``allow_new_classes``)."""
    problems = []
    index = table.reset_index(drop=True)
    outside = [i for i, p in enumerate(index["path"]) if p not in queue.by_path]
    if outside:
        problems.append(named_rows(outside, f"name clips not in {queue.table.name}"))
    heads = [i for i, h in enumerate(index["head"]) if h not in queue.classes]
    if heads:
        problems.append(named_rows(heads, f"name heads the model does not have ({', '.join(queue.classes)})"))
    kinds = [i for i, d in enumerate(index["decision"]) if d not in DECISIONS]
    if kinds:
        problems.append(named_rows(kinds, f"have a decision other than {', '.join(DECISIONS)}"))
    unknown = [i for i, (h, d, a) in enumerate(zip(index["head"], index["decision"], index["answer"]))
               if d in (ACCEPT, RELABEL) and h in queue.classes and a not in queue.classes[h]]
    if unknown and not allow_new_classes:
        problems.append(named_rows(unknown, "name classes the model does not know "
                                   f"(e.g. {index['answer'][unknown[0]]!r}; new_classes=allow adds them as new classes)"))
    if problems:
        raise InputError(f"{path}: " + "; ".join(problems) + ".")


class DecisionStore:
    """The reviewed table of one queue; every write holds the file's lock and re-reads it first."""

    def __init__(self, queue: ReviewQueue) -> None:
        self.queue, self.path = queue, queue.reviewed_path
        check_decisions(read_decisions(self.path), self.path, queue)  # a bad file is refused before serving

    def all(self) -> pd.DataFrame:
        return read_decisions(self.path)

    def record(self, clip: ReviewClip, head: str, decision: str, answer: str, reviewer: str) -> pd.DataFrame:
        """Write one decision (an unsure or empty clip: one row per head) and return the clip's rows."""
        if decision not in DECISIONS:
            raise InputError(f"decision={decision!r}: one of {', '.join(DECISIONS)}.")
        if head not in self.queue.classes:
            raise InputError(f"head={head!r}: the model's heads are {', '.join(self.queue.classes)}.")
        if decision == ACCEPT:
            answer = (clip.answers.get(head) or [("", 0.0)])[0][0]
        elif decision == RELABEL and answer not in self.queue.classes[head]:
            raise InputError(f"{answer!r} is not a class of {head}: pick one of {', '.join(self.queue.classes[head])}.")
        elif decision in WHOLE_CLIP:
            answer = ""
        heads = self.queue.heads if decision in WHOLE_CLIP else [head]
        new = [Decision(clip, h, decision, answer, reviewer).row() for h in heads]
        with exclusive(self.path):
            table = read_decisions(self.path)
            replaced = (table["path"] == clip.path) & table["head"].isin(heads)
            table = pd.concat([table[~replaced], pd.DataFrame(new)], ignore_index=True).fillna("")
            with atomic_path(self.path) as tmp:
                table.to_csv(tmp, index=False)
        return table[table["path"] == clip.path]
