"""predict's tables, rebuilt from the run's records (``state.py``) in input order, so that a resumed or merged
run's tables are the same, row for row, as one uninterrupted run's.

    output=<stem>.csv       one row per clip (tables.clip_row)
    <stem>_segments.csv     segments=true: one row per segment
    <stem>_events.csv       event_by=: one row per event
    <stem>_review.csv       review=true: least certain first (review.py)
    format=camtrap_dp       a Camtrap DP package instead of the CSV tables (data/camtrap_dp/exporter.py)

Every table is computed before the first is written, and each is written atomically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmbehave.core.atomic import atomic_path
from mmbehave.predicting.answers import classes_by_head, combine
from mmbehave.predicting.events import event_rows, plan_events
from mmbehave.predicting.options import AnswerOptions
from mmbehave.predicting.review import review_rows
from mmbehave.predicting.state import ClipRecord, append_whole
from mmbehave.predicting.tables import (
    ClipPrediction,
    camtrap_rows,
    clip_row,
    companion_path,
    segment_rows,
)


@dataclass(frozen=True)
class TableRequest:
    output: Path
    options: AnswerOptions
    thresholds: dict
    top_k: int
    provenance: dict[str, str]
    input_root: Path                       # what event tables' relative paths and placeholders are relative to
    review_head: str | None = None         # review=true: the head whose certainty orders the queue
    camtrap: object | None = None          # format=camtrap_dp: the prepared CamtrapExport


def missing_input_warning(clip, modalities: tuple[str, ...]) -> str:
    """Empty, or why the model has nothing to go on for this clip (then it answers from its biases alone).
    ``clip``: anything with has_video / has_audio."""
    has = {"video": clip.has_video, "audio": clip.has_audio}
    if any(has[m] for m in modalities):
        return ""
    missing = " and ".join(f"no {m}" for m in modalities)
    return f"{missing}: this {'+'.join(modalities)} model answers from its biases alone"


def as_prediction(record: ClipRecord) -> ClipPrediction:
    return ClipPrediction(Path(record.path), record.has_video, record.has_audio, list(record.windows),
                          list(record.probs))


def write_tables(records: list[ClipRecord], trained, request: TableRequest) -> list[dict]:
    """Every table the options ask for; returns the clip rows."""
    predictions = [as_prediction(record) for record in records]
    options = request.options
    multi = {head.name for head in trained.heads if head.multi}
    clip_probs = {p.path: combine(p.probs, options.aggregate, multi) for p in predictions}
    rows = [clip_row(p, clip_probs[p.path], missing_input_warning(p, trained.modalities), trained, options,
                     request.thresholds, request.top_k, request.provenance) for p in predictions]
    output = request.output
    if request.camtrap is not None:
        from mmbehave import __version__

        request.camtrap.write(output, camtrap_rows(rows), classified_by=f"mmbehave {__version__} "
                                                                       f"{trained.mlflow_run_id or 'no-mlflow-run'}")
        return rows
    tables = {output: rows}
    if options.segments_table:
        tables[companion_path(output, "segments")] = [
            row for p in predictions for row in segment_rows(p, trained, options, request.thresholds,
                                                               request.provenance)]
    if options.events:
        plan = plan_events([p.path for p in predictions], options.events, request.input_root)
        tables[companion_path(output, "events")] = event_rows(plan, clip_probs, classes_by_head(trained), request.thresholds,
                                                              options.wide, request.provenance, trained.heads)
    if request.review_head:
        tables[companion_path(output, "review")] = review_rows(clip_probs, classes_by_head(trained), request.review_head,
                                                               request.top_k)
    for table_path, table_rows in tables.items():
        with atomic_path(table_path) as tmp:
            pd.DataFrame(table_rows).to_csv(tmp, index=False)
    return rows


class RowStream:
    """The output table as the run goes: the rows of the clips done before, then each batch's rows appended in
    whole lines (in the order clips finish); the end rewrites it in input order with every companion table."""

    def __init__(self, request, trained) -> None:
        self.request, self.trained = request, trained

    def rows(self, records) -> list[dict]:
        multi = {head.name for head in self.trained.heads if head.multi}
        options, out = self.request.options, []
        for record in records:
            prediction = as_prediction(record)
            out.append(clip_row(prediction, combine(prediction.probs, options.aggregate, multi),
                                missing_input_warning(prediction, self.trained.modalities), self.trained, options,
                                self.request.thresholds, self.request.top_k, self.request.provenance))
        return out

    def start(self, done) -> None:
        """The rows of the clips done before (an earlier run of this command), or no table yet."""
        if done:
            with atomic_path(self.request.output) as tmp:
                pd.DataFrame(self.rows(done), columns=self.columns()).to_csv(tmp, index=False)
        else:
            self.request.output.unlink(missing_ok=True)  # an own table of other clips (checked): rebuilt at the end

    def columns(self) -> list[str]:
        return list(self.probe().keys())

    def probe(self) -> dict:
        """A row of the table's shape (the columns of a clip row with these options)."""
        probs = {head.name: np.full(len(self.trained.classes[head.name]), 0.5, np.float32) for head in self.trained.heads}
        return self.rows([ClipRecord("x", "", True, True, [(0.0, None)], [probs])])[0]

    def append(self, records) -> None:
        if records:
            buffer = io.StringIO()
            new = not self.request.output.is_file()
            pd.DataFrame(self.rows(records), columns=self.columns()).to_csv(buffer, index=False, header=new)
            append_whole(self.request.output, buffer.getvalue())
