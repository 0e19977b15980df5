"""A Camtrap DP package reviewed in another tool (Agouti, Trapper, Timelapse, or mmbehave's own export) as
decisions on a queue: ``python -m mmbehave.review queue=<stem>_review.csv camtrap_dp_import=<package>`` writes them
into ``<stem>_reviewed.csv`` (one locked write per decision, as the page's), then ``split reviewed=`` takes them.

    an observation of a media file the queue holds (its filePath under the package, or a file name only one queue
    clip has), classified by a person (classificationMethod human; machine ones are left alone)
        observationType animal ─► species: scientificName, behavior: behavior (accept where the model said so)
        observationType blank  ─► empty;  unknown / unclassified ─► unsure
    refused in one line naming the rows: observations of files not in the queue, and classes the model does not know
"""

from __future__ import annotations

from pathlib import Path

from mmbehave.core.errors import InputError
from mmbehave.reviewing.decisions import ACCEPT, EMPTY, RELABEL, UNSURE, DecisionStore, named_rows
from mmbehave.reviewing.queue import ReviewClip

HEAD_FIELDS = {"species": "scientificName", "behavior": "behavior"}


def clip_for(file_path: str, package_dir: Path, by_resolved: dict[str, ReviewClip],
             by_name: dict[str, list[ReviewClip]]) -> ReviewClip | None:
    """The queue clip a media row is: its filePath under the package, else the one clip of that file name."""
    if file_path and (clip := by_resolved.get(str((package_dir / file_path).resolve()))) is not None:
        return clip
    named = by_name.get(Path(file_path).name, [])
    return named[0] if len(named) == 1 else None


def import_decisions(package_path: str, store: DecisionStore) -> int:
    """Every human observation of a queue clip as decisions; the number of clips decided."""
    from mmbehave.data.camtrap_dp.package import open_package

    queue = store.queue
    by_name: dict[str, list[ReviewClip]] = {}
    for clip in queue.clips:
        by_name.setdefault(Path(clip.path).name, []).append(clip)
    by_resolved = {str(Path(clip.path).resolve()): clip for clip in queue.clips}  # resolved once, not per observation
    with open_package(package_path) as package:
        files = dict(zip(package.media["mediaID"], package.media["filePath"]))
        human = package.observations[package.observations["classificationMethod"].str.lower() == "human"]
        planned, outside, unknown = [], [], []
        for _, row in human.iterrows():
            clip = clip_for(files.get(row["mediaID"], ""), package.folder, by_resolved, by_name)
            if clip is None:
                outside.append(int(row.name))
                continue
            kind, reviewer = row["observationType"], row.get("classifiedBy", "") or "camtrap_dp"
            if kind == "blank":
                planned.append((clip, queue.heads[0], EMPTY, "", reviewer))
            elif kind in ("unknown", "unclassified"):
                planned.append((clip, queue.heads[0], UNSURE, "", reviewer))
            else:
                for head, field in HEAD_FIELDS.items():
                    answer = str(row.get(field, "") or "")
                    if head not in queue.classes or not answer:
                        continue
                    if answer not in queue.classes[head]:
                        unknown.append(int(row.name))
                        continue
                    top = (clip.answers.get(head) or [("", 0.0)])[0][0]
                    planned.append((clip, head, ACCEPT if answer == top else RELABEL, answer, reviewer))
        problems = []
        if outside:
            problems.append(named_rows(outside, f"observe media files not in {queue.table.name}"))
        if unknown:
            problems.append(named_rows(sorted(set(unknown)), "name classes the model does not know"))
        if problems:
            raise InputError(f"{package.paths['observations']}: " + "; ".join(problems) + ".")
    for clip, head, decision, answer, reviewer in planned:
        store.record(clip, head, decision, answer, reviewer)
    return len({clip.path for clip, *_ in planned})
