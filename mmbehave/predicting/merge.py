"""``merge=[p0.csv,p1.csv,...]``: one set of tables from the records of shards predicted on several machines
(``shard=i/N``, e.g. a SLURM array), rebuilt as one run over the whole input would have written them: events
that span shards are whole again, and the review queue covers every clip."""

from __future__ import annotations

from pathlib import Path

from mmbehave.core.errors import InputError
from mmbehave.predicting.outputs import write_tables
from mmbehave.predicting.shards import check_whole_season
from mmbehave.predicting.state import (
    append_errors,
    append_whole,
    read_errors,
    read_records,
    state_paths,
)


def merge_shards(tables: list[Path], trained, request, allow_partial: bool = False
                 ) -> tuple[Path | None, list[dict], list[tuple[Path, str]]]:
    """One set of tables from the records of the shards' outputs (``merge=[p0.csv,p1.csv,...]``), after
    checking they are every shard of one input, each finished, by this model (shards.py)."""
    records, failures, counted = {}, {}, {}
    for table in tables:
        records_path, errors_path = state_paths(table)
        if not records_path.is_file() and not errors_path.is_file():
            raise InputError(f"merge: {table} has no {records_path.name} beside it; give the output= tables of "
                             "the shards' predict runs (same checkpoint).")
        shard_records, shard_failures = read_records(records_path), read_errors(errors_path)
        counted[table] = len(shard_records.keys() | shard_failures.keys())
        records.update(shard_records)
        failures.update(shard_failures)
    model = request.provenance["model_sha256"]
    check_whole_season(tables, counted, model, allow_partial)
    others = sorted({record.model for record in records.values()} - {model})
    if others:
        raise InputError(f"merge: the shards were predicted with another model ({', '.join(others)}), not this "
                         f"checkpoint ({model}); merge with the checkpoint they used.")
    ordered = [records[path] for path in sorted(records)]
    merged_records, merged_errors = state_paths(request.output)
    for path in (merged_records, merged_errors):
        path.unlink(missing_ok=True)
    append_whole(merged_records, "".join(record.to_json() + "\n" for record in ordered))
    unreadable = sorted((path, reason) for path, reason in failures.items() if path not in records)
    if unreadable:
        append_errors(merged_errors, unreadable)
    rows = write_tables(ordered, trained, request) if ordered else []
    return request.output if ordered else None, rows, [(Path(p), r) for p, r in unreadable]
