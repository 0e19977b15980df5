"""A review's decisions as a Camtrap DP 1.0 package: ``python -m mmbehave.review queue=<stem>_review.csv
camtrap_dp=<folder>`` writes it and exits (no page is served).

    one observation per reviewed clip   classificationMethod human, classifiedBy the reviewer, classificationTimestamp
                                        the decision's time; scientificName and behavior the person's answers
                                        (accept: the model's, relabel: the person's own)
    empty                               observationType blank
    unsure                              observationType unknown (a person looked and could not tell)
    a clip some head has no decision on is left out (it is not reviewed yet)

Places and times come from the dataset ``import_camtrap_dp`` wrote when the clips are its own (found above the
clips, as predict's format=camtrap_dp finds it), else placeholders: the same rules as predict's export
(data/camtrap_dp/exporter.py), so Agouti, Trapper or camtraptor read both alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mmbehave.core.errors import InputError
from mmbehave.data.camtrap_dp.exporter import CamtrapExport
from mmbehave.reviewing.decisions import EMPTY, UNSURE
from mmbehave.reviewing.queue import ReviewQueue


def decision_rows(table: pd.DataFrame, queue: ReviewQueue) -> list[dict]:
    """One exporter row per fully reviewed clip, in queue order."""
    rows = []
    by_path = {path: group for path, group in table.groupby("path", sort=False)}
    for clip in queue.clips:
        group = by_path.get(clip.path)
        if group is None:
            continue
        decided = {row["head"]: row for _, row in group.iterrows()}
        kinds = {row["decision"] for row in decided.values()}
        if not (kinds & {UNSURE, EMPTY}) and any(head not in decided for head in queue.heads):
            continue
        last = max(decided.values(), key=lambda row: row["time"])
        row = {"path": clip.path, "species": decided["species"]["answer"] if "species" in decided else "",
               "behavior": decided["behavior"]["answer"] if "behavior" in decided else "",
               "classificationMethod": "human", "classifiedBy": last["reviewer"],
               "classificationTimestamp": last["time"]}
        if EMPTY in kinds:
            row.update(observationType="blank", species="", behavior="")
        elif UNSURE in kinds:
            row.update(observationType="unknown", species="", behavior="")
        rows.append(row)
    return rows


def export_decisions(table: pd.DataFrame, queue: ReviewQueue, folder: Path, package: str | None = None) -> tuple[Path, int]:
    rows = decision_rows(table, queue)
    if not rows:
        raise InputError(f"{queue.reviewed_path}: no clip has a decision on every head yet, so there is nothing to "
                         "export; review some clips first (python -m mmbehave.review queue=...).")
    # media filePaths are relative to the folder that holds every reviewed clip (predict's input= for a season)
    root = Path(os.path.commonpath([str(Path(row["path"]).resolve().parent) for row in rows]))
    export = CamtrapExport.prepare(str(root), package)
    reviewers = ", ".join(sorted({row["classifiedBy"] for row in rows}))
    return export.write(folder, rows, reviewers, title="Human"), len(rows)
