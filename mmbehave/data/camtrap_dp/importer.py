"""A Camtrap DP package -> mmbehave's raw dataset layout (``python -m mmbehave.import_camtrap_dp``).

    <output_dir>/raw/videos/<deploymentID>/<mediaID>.<ext>     a video or audio file, hard-linked or copied
    <output_dir>/raw/videos/<deploymentID>/<eventID>.mp4       an image burst written as a silent MP4
    <output_dir>/raw/metadata/{train,val,test}.csv             clip_id, species, behavior, video_path (+ METADATA_EXTRA)
    <output_dir>/raw/camtrap_dp/                               the source's datapackage.json, deployments.csv, media.csv:
                                                        predict format=camtrap_dp reads them back
    <output_dir>/import_report.csv                             what was used and skipped, and why

Which clips and labels: ``clips``; which split: whole deployments (or locations) by the class-covering
assignment of ``mmbehave.data.splits.group_split``, which puts every species and behaviour in every split where
the groups allow it.
Every file is written atomically; a re-import replaces what an earlier one wrote under the same names, and an
output_dir= holding a dataset made another way (or lying inside the package) is refused before anything is written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import pandas as pd
from tqdm.auto import tqdm

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import ClipReadError, ConfigError, DataError, InputError
from mmbehave.core.guards import refuse_output_over_inputs
from mmbehave.core.progress import show_progress
from mmbehave.core.settings import typed_view
from mmbehave.data.camtrap_dp.clips import Clip, ImportReport, ImportRules, plan_clips
from mmbehave.data.camtrap_dp.image_bursts import write_burst
from mmbehave.data.camtrap_dp.package import SOURCE_FOLDER, iso_utc, open_package
from mmbehave.data.layout import SPLITS, DatasetLayout
from mmbehave.data.splits.group_split import GroupCounts, assign_covering

log = logging.getLogger(__name__)

METADATA_EXTRA = ("deploymentID", "locationID", "mediaID", "eventID", "observationLevel", "observationID",
                  "eventStart", "eventEnd", "mediaType")  # mediaID of a burst: its images' ids, "|"-separated
REPORT_NAME = "import_report.csv"


@dataclass(frozen=True)
class BurstOptions:
    fps: float = 2.0               # frame rate of the MP4 an event of still images becomes
    max_side: int = 1280           # images scaled down to this longer side (pixels)


@dataclass(frozen=True)
class MediaOptions:
    transfer: Literal["hardlink", "copy"] = "hardlink"
    burst: BurstOptions = BurstOptions()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MediaOptions:
        options = typed_view(cls, {key: cfg[key] for key in ("transfer", "burst") if key in cfg}, "", defaults=True)
        if options.burst.fps <= 0 or options.burst.max_side < 2:
            raise ConfigError(f"burst.fps={options.burst.fps}, burst.max_side={options.burst.max_side}: both must be "
                              "positive (max_side >= 2).")
        return options


@dataclass(frozen=True)
class ImportSplit:
    group_by: Literal["deploymentID", "locationID"] = "deploymentID"  # a group is never split
    fractions: dict[str, float] = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    seed: int = 0
    assign: dict[str, str] = field(default_factory=dict)        # group -> split, fixed

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ImportSplit:
        """From the ``split`` config keys; a key left out takes the default above."""
        rule = typed_view(cls, cfg, "split", defaults=True)
        unknown = sorted(set(rule.fractions) - set(SPLITS))
        if unknown:
            raise ConfigError(f"split.fractions has {', '.join(unknown)}; the splits are {', '.join(SPLITS)}.")
        fractions = {split: rule.fractions.get(split, 0.0) for split in SPLITS}
        if min(fractions.values()) < 0 or sum(fractions.values()) <= 0:
            raise ConfigError(f"split.fractions={rule.fractions}: shares must be >= 0 and not all 0.")
        wrong = {group: split for group, split in rule.assign.items() if split not in SPLITS}
        if wrong:
            group, split = next(iter(wrong.items()))
            raise ConfigError(f"split.assign.{group}={split}: a group goes to one of {', '.join(SPLITS)}.")
        return dataclasses.replace(rule, fractions=fractions)


@dataclass
class ImportResult:
    layout: DatasetLayout
    report: ImportReport
    clips: list[Clip]               # written ones, with clip_id and split set
    report_path: Path

    def split_counts(self) -> dict[str, int]:
        return {split: sum(1 for clip in self.clips if clip.split == split) for split in SPLITS}


def import_package(cfg: Mapping[str, Any]) -> ImportResult:
    """The command's work; ``cfg`` holds conf/import_camtrap_dp.yaml's keys."""
    if not str(cfg.get("output_dir") or "").strip():
        raise InputError("output_dir= is required: the dataset root to write (raw/ goes under it).")
    rules, split_rule = ImportRules.from_config(cfg), ImportSplit.from_config(cfg.get("split") or {})
    options = MediaOptions.from_config(cfg)
    layout = DatasetLayout(Path(str(cfg["output_dir"])).expanduser())
    refuse_foreign_dataset(layout)
    with open_package(cfg.get("package")) as package:
        media_dir = Path(str(cfg["media_dir"])).expanduser() if cfg.get("media_dir") else package.folder
        if not media_dir.is_dir():
            raise InputError(f"media_dir={media_dir}: no such folder; give the folder that filePath / fileName "
                             "in media.csv are relative to.")
        refuse_output_over_inputs(layout.root, key="out", sources=[package.folder, media_dir])
        report = ImportReport()
        planned = plan_clips(package, rules, media_dir, report)
        groups = _group_names(package, split_rule.group_by)
        unknown = sorted(set(split_rule.assign) - set(groups.values()))
        if unknown:
            raise ConfigError(f"split.assign names {', '.join(unknown)}, not a {split_rule.group_by} of "
                              f"{package.paths['deployments']}; use the ids written there.")
        bar = tqdm(planned, desc="clips", unit="clip", disable=not show_progress(cfg.get("progress", True)))
        written = [clip for clip in bar if _write_clip(layout, clip, options, report)]
        split_of = split_groups(written, groups, split_rule)
        for clip in written:
            clip.split = split_of[groups[clip.deployment_id]]
            kind = "image burst" if clip.kind == "images" else clip.kind
            report.add("clips", "written", f"{clip.split}: {kind}", clip.clip_id)
        locations = dict(zip(package.deployments["deploymentID"], package.deployments["locationID"]))
        _write_metadata(layout, written, locations)
        _copy_source(layout, package)
    report_path = layout.root / REPORT_NAME
    with atomic_path(report_path) as tmp:
        report.table().to_csv(tmp, index=False)
    return ImportResult(layout, report, written, report_path)


def split_groups(clips: list[Clip], group_of: dict[str, str], rule: ImportSplit) -> dict[str, str]:
    """Each group (deployment or location) -> its split, covering every species and behaviour where it can."""
    if not clips:
        return {}
    labels = [[("species", clip.species), *(("behavior", b) for b in clip.behavior.split("|") if b)] for clip in clips]
    counts = GroupCounts.build([group_of[clip.deployment_id] for clip in clips], labels, ("species", "behavior"))
    return assign_covering(counts, rule.fractions, rule.seed, fixed=rule.assign)


def is_earlier_import(layout: DatasetLayout) -> bool:
    """Whether ``layout.root`` was written by this command: its report and its copy of the source package."""
    return (layout.root / REPORT_NAME).is_file() and (layout.raw_dir / SOURCE_FOLDER / "datapackage.json").is_file()


def refuse_foreign_dataset(layout: DatasetLayout) -> None:
    """An import writes raw/ and import_report.csv under output_dir=: where those exist, they must be an earlier
    import's (which a re-import replaces), never a dataset made another way."""
    taken = [path for path in (layout.raw_dir, layout.root / REPORT_NAME) if path.exists()]
    if taken and not is_earlier_import(layout):
        raise InputError(f"output_dir={layout.root} already holds {', '.join(p.name + ('/' if p.is_dir() else '') for p in taken)}"
                         f", which import_camtrap_dp did not write (no {REPORT_NAME} and raw/{SOURCE_FOLDER}/); importing "
                         "there would replace its label tables. Choose a new or empty output_dir= folder.")


def _group_names(package, by: str) -> dict[str, str]:
    """deploymentID -> the group its clips split with: itself, or its locationID (itself where that is blank)."""
    names = {d: d for d in package.media["deploymentID"]}
    for deployment, location in zip(package.deployments["deploymentID"], package.deployments["locationID"]):
        names[deployment] = (location or deployment) if by == "locationID" else deployment
    return names


def _write_clip(layout: DatasetLayout, clip: Clip, options: MediaOptions, report: ImportReport) -> bool:
    """Put the clip's file under raw/videos/; False (reported) when an image of a burst cannot be read."""
    if clip.kind == "images":
        target = layout.raw_dir / "videos" / f"{clip.clip_id}.mp4"
        try:
            write_burst(clip.files, target, options.burst.fps, options.burst.max_side)
        except ClipReadError as error:
            report.add("clips", "skipped", "an image of the burst could not be read",
                       f"{clip.clip_id} ({error.path.name})")
            log.warning("Skipped burst %s: %s", clip.clip_id, error)
            return False
    else:
        source = clip.files[0]
        target = layout.raw_dir / "videos" / f"{clip.clip_id}{source.suffix.lower()}"
        _transfer(source, target, options.transfer)
    clip.video_path = target.relative_to(layout.raw_dir).as_posix()
    return True


def _transfer(source: Path, target: Path, how: str) -> None:
    """Hard-link (copy across file systems, or when asked) ``source`` to ``target``, atomically. A symlinked
    media file is followed: the dataset gets the file itself, never a link that breaks once moved."""
    source = source.resolve()
    with atomic_path(target) as tmp:
        if how == "hardlink":
            tmp.unlink()
            try:
                os.link(source, tmp)
                return
            except OSError:  # another file system, or links not allowed: copy instead
                pass
        shutil.copyfile(source, tmp)


def _write_metadata(layout: DatasetLayout, clips: list[Clip], locations: dict[str, str]) -> None:
    columns = ["clip_id", "species", "behavior", "video_path", *METADATA_EXTRA]
    for split in SPLITS:
        rows = [{"clip_id": c.clip_id, "species": c.species, "behavior": c.behavior, "video_path": c.video_path,
                 "deploymentID": c.deployment_id, "locationID": locations.get(c.deployment_id, ""),
                 "mediaID": "|".join(c.media_ids), "eventID": c.event_id, "observationLevel": c.level,
                 "observationID": "|".join(c.observation_ids), "eventStart": iso_utc(c.start),
                 "eventEnd": iso_utc(c.end.ceil("s")), "mediaType": c.kind}
                for c in clips if c.split == split]
        with atomic_path(layout.metadata_csv(split)) as tmp:
            pd.DataFrame(rows, columns=columns).to_csv(tmp, index=False)


def _copy_source(layout: DatasetLayout, package) -> None:
    folder = layout.raw_dir / SOURCE_FOLDER
    for name, source in [("datapackage.json", package.descriptor_path),
                         ("deployments.csv", package.paths["deployments"]), ("media.csv", package.paths["media"])]:
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(source, tmp)


def summary_lines(result: ImportResult) -> list[str]:
    counts = result.split_counts()
    lines = [result.report.format(), "",
             f"{len(result.clips)} clip(s): " + ", ".join(f"{counts[s]} {s}" for s in SPLITS)
             + f" -> {result.layout.metadata_dir}", f"Report: {result.report_path}"]
    empty = [split for split in SPLITS if not counts[split]]
    if empty and result.clips:
        lines.append(f"warning: no clips in {', '.join(empty)}; training needs every split. Import more deployments, "
                     "or set split.fractions / split.assign.")
    if result.clips:
        lines.append(f"Next: python -m mmbehave.preprocess data.root={result.layout.root}")
    return lines


def check_not_empty(result: ImportResult) -> None:
    if not result.clips:
        raise DataError(f"no clip was made from the package; {result.report_path} says why for each observation "
                        "and media file.")
