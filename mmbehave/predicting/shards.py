"""Shards of one input predicted on several machines (``shard=i/N``, e.g. a SLURM array), and what makes them a
whole season when ``merge=`` joins them.

Each sharded run writes ``<stem>_shard.json`` beside its output before it predicts anything: which ``i/N`` it
is, how many clips the whole input holds, a digest of the whole input's listing, and the model. Its records say
their ``i/N`` too. ``merge=`` reads these and refuses a season with a shard missing, doubled, unfinished, or
from another input or model, because a SLURM array with one failed job would otherwise give a table with a
hole and exit 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from mmbehave.core.atomic import write_text_atomic
from mmbehave.core.errors import ConfigError, InputError
from mmbehave.predicting.state import beside_output

log = logging.getLogger("mmbehave.predict")
SLURM_EXAMPLE = "shard=${SLURM_ARRAY_TASK_ID}/16 in the job script"  # bash expands it; Hydra sees shard=3/16


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def read_shard(shard: str | None) -> Shard | None:
    """``shard=i/N`` as a Shard (None: the whole input)."""
    if shard is None:
        return None
    try:
        index, count = (int(part) for part in str(shard).split("/"))
    except ValueError:
        raise ConfigError(f"shard={shard}: give i/N with 0 <= i < N, e.g. shard=0/16 (SLURM: {SLURM_EXAMPLE}).") \
            from None
    if not 0 <= index < count:
        raise ConfigError(f"shard={shard}: i must be in [0, {count}) for N={count}.")
    return Shard(index, count)


def shard_of(clips: list[Path], shard: str | None) -> list[Path]:
    """Every N-th clip from the i-th of the sorted input (all of them without a shard)."""
    part = read_shard(shard)
    return clips if part is None else clips[part.index::part.count]


@dataclass(frozen=True)
class ShardManifest:
    shard: str          # "i/N"
    input_clips: int    # clips in the whole input, every shard together
    input_sha256: str   # of the whole input's sorted listing, relative to input=: the same on every machine
    model: str          # the checkpoint's SHA-256 prefix

    @property
    def part(self) -> Shard:
        return read_shard(self.shard)

    def clips_in_shard(self) -> int:
        return len(range(self.part.index, self.input_clips, self.part.count))


def manifest_path(output: Path) -> Path:
    return beside_output(output, "shard.json")


def input_digest(clips: list[Path], root: Path) -> str:
    """A digest of the listing (paths relative to ``root``), so that shards read from other mounts still agree."""
    listing = "\n".join(str(clip.relative_to(root)) if clip.is_relative_to(root) else clip.name for clip in clips)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def write_manifest(output: Path, shard: str, all_clips: list[Path], root: Path, model: str) -> ShardManifest:
    """Say which shard this output is before any record is written; a shard run again must be the same one."""
    manifest = ShardManifest(str(read_shard(shard)), len(all_clips), input_digest(all_clips, root), model)
    path = manifest_path(output)
    if path.is_file():
        earlier = read_manifest(path)
        if (earlier.shard, earlier.input_sha256) != (manifest.shard, manifest.input_sha256):
            raise ConfigError(f"{path} says this output holds shard {earlier.shard} of input "
                              f"{earlier.input_sha256}, not shard {manifest.shard} of {manifest.input_sha256}; "
                              "give each shard an output of its own (e.g. output=parts/part_${SLURM_ARRAY_TASK_ID}"
                              ".csv in the job script).")
    write_text_atomic(path, json.dumps(asdict(manifest), indent=1) + "\n")
    return manifest


def read_manifest(path: Path) -> ShardManifest:
    try:
        return ShardManifest(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise InputError(f"{path} is not a shard manifest ({error}); predict that shard again.") from None


def check_whole_season(tables: list[Path], counted: dict[Path, int], model: str, allow_partial: bool) -> list[str]:
    """Refuse, in one line naming them, shards that are missing, doubled, unfinished, or of another input or
    model. ``allow_partial=true`` lets missing and unfinished shards through (said in a warning each), never a
    mix of inputs or models. ``counted``: the clips each table's records and errors hold. Returns what is missing."""
    manifests = []  # (table, its manifest), a table given twice twice
    for table in tables:
        path = manifest_path(table)
        if not path.is_file():
            raise InputError(f"merge: {table} has no {path.name} beside it, so it was not predicted with shard=i/N "
                             "(or by a version before shards said so); predict it again with its shard=i/N.")
        manifests.append((table, read_manifest(path)))
    mixed, missing = mixed_shards(manifests, model), missing_shards(manifests, counted)
    if mixed or (missing and not allow_partial):
        hint = "" if mixed else (" Predict what is missing (the same command again finishes a shard), or give "
                                 "allow_partial=true to write what is there.")
        raise InputError(f"merge: not one whole season: {'; '.join(mixed + missing)}.{hint}")
    for problem in missing:
        log.warning("allow_partial=true: %s; the season table lacks those clips.", problem)
    return missing


def mixed_shards(manifests: list[tuple[Path, ShardManifest]], model: str) -> list[str]:
    """Shards that cannot be one season's: another model, another input or N, the same i twice."""
    problems, (first_table, first) = [], manifests[0]
    by_index: dict[int, list[Path]] = {}
    for table, manifest in manifests:
        by_index.setdefault(manifest.part.index, []).append(table)
        if manifest.model != model:
            problems.append(f"{table} was predicted with model {manifest.model}, not this checkpoint ({model})")
        if (manifest.input_sha256, manifest.part.count) != (first.input_sha256, first.part.count):
            problems.append(f"{table} is shard {manifest.shard} of input {manifest.input_sha256}, but "
                            f"{first_table} is shard {first.shard} of input {first.input_sha256}")
    return problems + [f"shard {i}/{first.part.count} is given twice ({', '.join(map(str, tables))})"
                       for i, tables in sorted(by_index.items()) if len(tables) > 1]


def missing_shards(manifests: list[tuple[Path, ShardManifest]], counted: dict[Path, int]) -> list[str]:
    """Shards of N not given, and shards whose records and errors hold fewer clips than the shard has."""
    first = manifests[0][1]
    given = {manifest.part.index for _, manifest in manifests}
    problems = [f"shard {manifest.shard} ({table}) is unfinished: {counted.get(table, 0)} of "
                f"{manifest.clips_in_shard()} clips" for table, manifest in dict(manifests).items()
                if counted.get(table, 0) < manifest.clips_in_shard()]
    absent = [f"{i}/{first.part.count}" for i in range(first.part.count) if i not in given]
    return problems + ([f"shard(s) {', '.join(absent)} missing"] if absent else [])
