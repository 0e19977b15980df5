"""A review's decisions become training data: ``python -m mmbehave.split reviewed=<stem>_reviewed.csv
labels_dir=<root>/raw/metadata output_dir=<round dir>``.

    existing train/val/test.csv  ─┐   every row stays in its split, in its order; a reviewed clip that is already
    <stem>_reviewed.csv ──────────┴─► there gets the person's labels in place ("corrected")
                                      a new clip joins the split its group_by group is in; a new group goes to the
                                      split furthest below its share of fractions (largest groups first)
    <output_dir>/{train,val,test}.csv        the tables, ready for data.labels_dir=<output_dir> (or raw/metadata/)
    <output_dir>/reviewed_outcome.csv         clip_id, path, outcome (added / corrected / left out), split, reason

A clip is added when every head has a decision: accept or relabel, or "empty" for a clip the heads have an
empty class for (a class named empty, blank, none or nothing). "unsure" clips, clips some head has no decision
on, and empty clips where a head has no empty class are left out, each with its reason. New rows carry
video_path (the clip's own file, absolute), the group column and reviewed_by (who decided).
The classes the model knows are those of the existing tables (the model was trained on them); a reviewed
class beyond them is refused, unless new_classes=allow (then init_from adds its output row).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import InputError
from mmbehave.data.layout import SPLITS
from mmbehave.data.splits.options import parse_fractions
from mmbehave.reviewing.decisions import ACCEPT, EMPTY, RELABEL, UNSURE, check_decisions, read_decisions
from mmbehave.reviewing.queue import QUEUE_SUFFIX, REVIEWED_SUFFIX, read_queue

EMPTY_NAMES = ("empty", "blank", "none", "nothing")
OUTCOME_NAME = "reviewed_outcome.csv"
REVIEWED_BY = "reviewed_by"


@dataclass(frozen=True)
class CorrectionOptions:
    reviewed: Path
    labels_dir: Path
    output_dir: Path
    group_by: str
    fractions: dict[str, float]
    heads: tuple[str, ...]
    queue: Path | None
    empty_group: str
    new_classes: str
    overwrite: bool
    seed: int
    group_from_folder: int | None = None   # N: the folder N levels above a clip names its group (1: its own folder)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> CorrectionOptions:
        for key, what in (("labels_dir", "the folder holding the existing train.csv, val.csv, test.csv (e.g. "
                                         "<root>/raw/metadata)"),
                          ("output_dir", "a new folder for the tables with the reviewed clips added")):
            if not cfg.get(key):
                raise InputError(f"reviewed= needs {key}=: {what}.")
        if str(cfg.get("new_classes", "refuse")) not in ("refuse", "allow"):
            raise InputError(f"new_classes={cfg.get('new_classes')}: refuse (the default) or allow.")
        return cls(Path(cfg["reviewed"]), Path(cfg["labels_dir"]), Path(cfg["output_dir"]), str(cfg["group_by"]),
                   parse_fractions(cfg["fractions"]), tuple(cfg["heads"]),
                   Path(cfg["queue"]) if cfg.get("queue") else None, str(cfg.get("empty_group") or "error"),
                   str(cfg.get("new_classes") or "refuse"), bool(cfg.get("overwrite")), int(cfg.get("seed") or 0),
                   folder_level(cfg.get("group_from_folder")))


def folder_level(value: Any) -> int | None:
    if value is None or str(value).strip() in ("", "null", "none"):
        return None
    if not str(value).strip().isdigit() or int(value) < 1:
        raise InputError(f"group_from_folder={value}: give N >= 1, the folder N levels above each clip that names its "
                         "group (archive/<site>/<camera>/clip.avi: 1 groups by camera, 2 by site).")
    return int(value)


def clip_group(row: pd.Series, path: str, options: CorrectionOptions) -> str:
    """The clip's group: its group_by cell (from the predictions table), else the folder group_from_folder names."""
    if options.group_from_folder is not None:
        parents = Path(path).parents
        return parents[options.group_from_folder - 1].name if len(parents) >= options.group_from_folder else ""
    return str(row.get(options.group_by, "") or "")


@dataclass
class Corrections:
    options: CorrectionOptions
    tables: dict[str, pd.DataFrame]       # split -> the new table
    outcome: pd.DataFrame                 # one row per reviewed clip


def queue_beside(reviewed: Path) -> Path:
    stem = reviewed.stem.removesuffix(REVIEWED_SUFFIX)
    for name in (f"{stem}{QUEUE_SUFFIX}.csv", f"{stem}.csv"):
        if (reviewed.with_name(name)).is_file():
            return reviewed.with_name(name)
    raise InputError(f"reviewed={reviewed}: the queue it was reviewed from ({stem}{QUEUE_SUFFIX}.csv) is not beside it; "
                     "give queue=<stem>_review.csv.")


def read_existing(options: CorrectionOptions) -> dict[str, pd.DataFrame]:
    tables = {split: pd.read_csv(path, dtype=str, keep_default_na=False)
              for split in SPLITS if (path := options.labels_dir / f"{split}.csv").is_file()}
    if "train" not in tables:
        raise InputError(f"labels_dir={options.labels_dir}: no train.csv; give the folder of the label tables the "
                         "model was trained on (<root>/raw/metadata, or a split's output_dir).")
    for split, table in tables.items():
        missing = [column for column in ("clip_id", *options.heads) if column not in table.columns]
        if missing:
            raise InputError(f"{options.labels_dir / f'{split}.csv'}: no column(s) {', '.join(missing)} (heads=); its "
                             f"columns are {', '.join(table.columns)}.")
    return tables


def known_classes(tables: dict[str, pd.DataFrame], heads: tuple[str, ...]) -> dict[str, list[str]]:
    return {head: sorted({cell for table in tables.values() for cell in table[head] if cell}) for head in heads}


def clip_labels(rows: pd.DataFrame, heads: tuple[str, ...], classes: dict[str, list[str]]) -> tuple[dict | None, str]:
    """(head -> label, "") for a clip to add, or (None, why it is left out)."""
    decided = {row["head"]: row for _, row in rows.iterrows()}
    if any(row["decision"] == UNSURE for row in decided.values()):
        return None, "unsure"
    if any(row["decision"] == EMPTY for row in decided.values()):
        empty = {head: next((name for name in classes[head] if name.lower() in EMPTY_NAMES), None) for head in heads}
        lacking = [head for head, name in empty.items() if name is None]
        if lacking:
            return None, f"empty, and {', '.join(lacking)} has no empty class ({'/'.join(EMPTY_NAMES)})"
        return empty, ""
    missing = [head for head in heads if head not in decided]
    if missing:
        return None, f"no decision on {', '.join(missing)}"
    return {head: decided[head]["answer"] for head in heads if decided[head]["decision"] in (ACCEPT, RELABEL)}, ""


def source_file(labels_dir: Path, clip_id: str, video_path: str) -> Path:
    """A table row's media file: video_path relative to raw/ (labels_dir's parent when it is raw/metadata), the
    layout's default videos/<clip_id>.mp4 when empty."""
    relative = Path(video_path or f"videos/{clip_id}.mp4")
    return relative if relative.is_absolute() else labels_dir.parent / relative


def same_clip(source: Path, reviewed: Path) -> bool:
    """Whether a row already in the tables is the reviewed file (IMG_0001 at another camera is not)."""
    try:
        return source.samefile(reviewed)
    except OSError:  # one of them is not on this machine: the same name and folder name count as the same clip
        return source.name == reviewed.name and source.parent.name == reviewed.parent.name


def new_clip_id(clip_id: str, path: str, taken: set[str]) -> str:
    """The clip's own id, or, when another clip has it (IMG_0001 at every camera), one with its path's digest."""
    if clip_id not in taken:
        return clip_id
    return f"{clip_id}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def place_new_groups(sizes: dict[str, int], counts: dict[str, int], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """New groups, largest first (ties in a seeded order), each to the split furthest below its share."""
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda group: -sizes[group])
    counts, placed = dict(counts), {}
    wanted = [split for split in SPLITS if fractions.get(split, 0) > 0]
    for group in order:
        total = sum(counts.values()) + sizes[group]
        split = max(wanted, key=lambda s: fractions[s] * total - counts.get(s, 0))
        placed[group] = split
        counts[split] = counts.get(split, 0) + sizes[group]
    return placed


def add_reviewed(options: CorrectionOptions) -> Corrections:
    """Everything checked and decided in memory; nothing written (``write_corrections``)."""
    check_output_folder(options)
    tables = read_existing(options)
    classes = known_classes(tables, options.heads)
    reviewed = read_decisions(options.reviewed)
    queue = read_queue(options.queue or queue_beside(options.reviewed), None, classes)
    check_decisions(reviewed, options.reviewed, queue, allow_new_classes=options.new_classes == "allow")
    missing_heads = [head for head in options.heads if head not in queue.heads]
    if missing_heads:
        raise InputError(f"heads={list(options.heads)}: the review's model has no head {', '.join(missing_heads)} "
                         f"(its heads: {', '.join(queue.heads)}).")
    outcome, additions, corrected = decide_each_clip(options, tables, reviewed, classes)
    group_split = ({g: split for split, table in tables.items() for g in table[options.group_by] if g}
                   if all(options.group_by in t.columns for t in tables.values()) else {})
    sizes: dict[str, int] = {}
    for addition in additions:
        if addition["group"] not in group_split:
            sizes[addition["group"]] = sizes.get(addition["group"], 0) + 1
    counts = {split: len(table) for split, table in tables.items()}
    placed = {**place_new_groups(sizes, counts, options.fractions, options.seed), **group_split}
    new_tables = tables_with_decisions(options, tables, corrected, additions, placed)
    outcome += [{"clip_id": a["clip_id"], "path": a["path"], "outcome": "added", "split": split, "reason": ""}
                for split in SPLITS for a in additions if placed[a["group"]] == split]
    return Corrections(options, new_tables, pd.DataFrame(outcome, columns=["clip_id", "path", "outcome", "split",
                                                                          "reason"]))


def check_output_folder(options: CorrectionOptions) -> None:
    if options.output_dir.resolve() == options.labels_dir.resolve():
        raise InputError(f"output_dir={options.output_dir} is labels_dir=: the tables read would be replaced. Give a new "
                         "folder (train with data.labels_dir=<it>, or copy its tables to raw/metadata/ when content).")
    there = [s for s in (*SPLITS, OUTCOME_NAME.removesuffix(".csv")) if (options.output_dir / f"{s}.csv").exists()]
    if there and not options.overwrite:
        raise InputError(f"output_dir={options.output_dir} already holds {', '.join(f'{s}.csv' for s in there)}; pass "
                         "overwrite=true to replace them, or choose another output_dir=.")


def decide_each_clip(options: CorrectionOptions, tables: dict, reviewed: pd.DataFrame, classes
                     ) -> tuple[list[dict], list[dict], dict]:
    """(outcome rows of the clips left out or corrected, the clips to add with their groups, {clip_id: (labels,
    reviewer)} of the clips corrected in place)."""
    where = {cid: split for split, table in tables.items() for cid in table["clip_id"]}
    sources = {cid: source_file(options.labels_dir, cid, row_path)
               for t in tables.values() for cid, row_path in zip(t["clip_id"], t.get("video_path", [""] * len(t)))}
    taken = set(where)
    outcome, additions, corrected = [], [], {}
    for path, rows in reviewed.groupby("path", sort=False):
        clip_id = rows["clip_id"].iloc[0]
        labels, why = clip_labels(rows, options.heads, classes)
        if labels is None:
            outcome.append({"clip_id": clip_id, "path": path, "outcome": "left out", "split": "", "reason": why})
            continue
        if clip_id in where and same_clip(sources[clip_id], Path(path)):
            corrected[clip_id] = (labels, rows["reviewer"].iloc[-1])  # the person's labels, in its own split and place
            outcome.append({"clip_id": clip_id, "path": path, "outcome": "corrected", "split": where[clip_id],
                            "reason": ""})
            continue
        new_id = new_clip_id(clip_id, path, taken)
        taken.add(new_id)
        additions.append({"clip_id": new_id, "path": path, "group": clip_group(rows.iloc[0], path, options),
                          "labels": labels, "reviewer": rows["reviewer"].iloc[-1]})
    lacking = [a["path"] for a in additions if not a["group"]]
    if lacking and options.empty_group != "own":
        raise InputError(f"{options.reviewed}: {len(lacking)} reviewed clip(s) have no {options.group_by} (e.g. "
                         f"{lacking[0]}), so their split cannot keep groups apart; predict from clips whose table has a "
                         f"{options.group_by} column, or pass group_from_folder=N (the folder N levels up names the group) or "
                         "empty_group=own (each such clip a group of its own).")
    for addition in additions:
        addition["group"] = addition["group"] or f"own:{addition['clip_id']}"
    return outcome, additions, corrected


def tables_with_decisions(options: CorrectionOptions, tables: dict, corrected: dict, additions: list[dict],
                          placed: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Every split's table: its rows in place (corrected ones relabelled), then the clips added to it."""
    new_tables = {}
    for split in SPLITS:
        table = tables.get(split, pd.DataFrame(columns=tables["train"].columns)).copy()
        for clip_id, (labels, reviewer) in corrected.items():
            hit = table["clip_id"] == clip_id
            for head, label in labels.items():
                table.loc[hit, head] = label
            if hit.any():
                table.loc[hit, REVIEWED_BY] = reviewer
        rows = [{"clip_id": a["clip_id"], **a["labels"], options.group_by: a["group"].removeprefix("own:")
                 if not a["group"].startswith("own:") else "", "video_path": str(Path(a["path"]).resolve()),
                 REVIEWED_BY: a["reviewer"]} for a in additions if placed[a["group"]] == split]
        if rows or split in tables:
            new_tables[split] = pd.concat([table, pd.DataFrame(rows)], ignore_index=True).fillna("")
    return new_tables


def write_corrections(result: Corrections) -> list[Path]:
    out = result.options.output_dir
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split, table in result.tables.items():
        with atomic_path(out / f"{split}.csv") as tmp:
            table.to_csv(tmp, index=False)
        written.append(out / f"{split}.csv")
    with atomic_path(out / OUTCOME_NAME) as tmp:
        result.outcome.to_csv(tmp, index=False)
    return [*written, out / OUTCOME_NAME]


def correction_lines(result: Corrections) -> list[str]:
    counts = result.outcome.groupby(["outcome", "split"]).size()
    lines = [f"{len(result.outcome)} reviewed clips of {result.options.reviewed}:"]
    for (outcome, split), count in counts.items():
        lines.append(f"  {outcome}{f' to {split}' if outcome == 'added' else f' in {split}' if split else ''}: {count}")
    for reason, count in result.outcome[result.outcome["outcome"] == "left out"].groupby("reason").size().items():
        lines.append(f"  left out, {reason}: {count}")
    lines.append("Every clip already in the tables kept its split. Train on them with "
                 f"data.labels_dir={result.options.output_dir} training.init_from=<the model reviewed>.")
    return lines
