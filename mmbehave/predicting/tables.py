"""The rows of predict's tables: per clip (output=), per segment (<stem>_segments.csv); Camtrap DP's rows.

    clip row     path, clip_id, has_video, has_audio, <label columns>, <head>_top<k>, warning, [segments],
                 [p(<head>=<class>) ...], model_run_id, model_sha256
    segment row  path, clip_id, segment (1, 2, ...), start_s, end_s, <label columns>, [p(...) ...], model_run_id,
                 model_sha256

New columns go after the ones predict has always written, so scripts reading those by position still work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmbehave.predicting.answers import (
    answer_columns,
    classes_by_head,
    top_k_columns,
    wide_columns,
)
from mmbehave.predicting.options import AnswerOptions
from mmbehave.predicting.thresholds import UNCERTAIN


@dataclass
class ClipPrediction:
    """One clip's probabilities, per segment (one segment, the whole clip, without segment_stride=)."""

    path: Path
    has_video: bool
    has_audio: bool
    windows: list[tuple[float, float | None]] = field(default_factory=list)  # (start_s, end_s) per segment
    probs: list[dict[str, np.ndarray]] = field(default_factory=list)          # {head: softmax} per segment


def clip_row(prediction: ClipPrediction, probs: dict[str, np.ndarray], warning: str, trained, options: AnswerOptions,
             thresholds: dict[str, float], top_k: int, provenance: dict[str, str]) -> dict:
    """``probs``: the clip's probabilities, its segments' combined."""
    names = classes_by_head(trained)
    row = {"path": str(prediction.path), "clip_id": prediction.path.stem, "has_video": prediction.has_video,
           "has_audio": prediction.has_audio, **answer_columns(trained.heads, names, probs, thresholds),
           **top_k_columns(names, probs, top_k), "warning": warning}
    if options.segment_stride is not None:
        row["segments"] = len(prediction.probs)
    if options.wide:
        row.update(wide_columns(names, probs))
    return {**row, **provenance}


def segment_rows(prediction: ClipPrediction, trained, options: AnswerOptions, thresholds: dict[str, float],
                 provenance: dict[str, str]) -> list[dict]:
    names = classes_by_head(trained)
    rows = []
    for number, ((start, end), probs) in enumerate(zip(prediction.windows, prediction.probs), 1):
        row = {"path": str(prediction.path), "clip_id": prediction.path.stem, "segment": number,
               "start_s": round(start, 3), "end_s": round(end, 3),
               **answer_columns(trained.heads, names, probs, thresholds)}
        if options.wide:
            row.update(wide_columns(names, probs))
        rows.append({**row, **provenance})
    return rows


def companion_path(output: Path, table: str) -> Path:
    """<stem>_segments.csv / <stem>_events.csv beside output=<stem>.csv."""
    return output.with_name(f"{output.stem}_{table}.csv")


def camtrap_rows(rows: list[dict]) -> list[dict]:
    """An ``uncertain`` species is Camtrap DP's observationType ``unknown`` (seen, not identified), not a
    scientific name; an uncertain behaviour is left blank (a multi-label behaviour head's labels stay joined
    by '|', Camtrap DP's way of listing several)."""
    fixed = {"species": "unknown", "behavior": ""}
    return [{**row, **{key: value for key, value in fixed.items() if row.get(key) == UNCERTAIN}} for row in rows]
