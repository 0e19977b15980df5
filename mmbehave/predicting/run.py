"""The work of ``python -m mmbehave.predict`` (the command's docstring says what users get).

    options checked ─► clips found (and this shard's share) ─► output checked ─► model loaded
      ─► estimate=true: a timed sample, then the expected wall time; nothing written
      ─► the clips not yet in this output's records predicted (archive.py: workers read, the model batches,
         every batch on disk) ─► every table rebuilt from the records, in input order (outputs.py)

Running the same command again continues where a crash, Ctrl-C or SIGTERM stopped it; ``merge=`` joins the
records of shards (``shard=i/N``) predicted on several machines into one set of tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.errors import InputError, StorageError
from mmbehave.core.locks import exclusive
from mmbehave.core.signals import stop_on_signals
from mmbehave.data.media_files import find_media
from mmbehave.predicting.output_checks import check_output
from mmbehave.predicting.outputs import RowStream
from mmbehave.predicting.settings import PredictSettings, read_predict_settings
from mmbehave.predicting.shards import shard_of, write_manifest
from mmbehave.predicting.state import (
    append_errors,
    append_records,
    file_key,
    read_errors,
    read_records,
    repair_torn_tail,
    state_paths,
)

log = logging.getLogger("mmbehave.predict")


@dataclass
class PredictResult:
    output: Path | None                         # the table (or package folder) written; None: nothing readable
    rows: list[dict]                            # one per predicted clip, in input order
    failures: list[tuple[Path, str]]            # unreadable clips: (path, reason)

    def __iter__(self):  # output, rows, failures = run_prediction(cfg)
        return iter((self.output, self.rows, self.failures))


def find_clips(input_path: str, extensions: list[str], recursive: bool) -> list[Path]:
    """The clips named by ``input=``: itself if a file, else the folder's media files (sorted); what the search
    leaves out is named in the log by extension."""
    if not input_path:
        raise InputError("input= is required: a clip file or a folder of clips.")
    path = Path(input_path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"input={input_path}: no such file or folder.")
    search = find_media(path, extensions, recursive)
    if search.skipped:
        log.info("input=%s: %d file(s) are not clips and were left out: %s", input_path,
                 sum(search.skipped.values()), search.skipped_text())
    if not search.files:
        raise InputError(f"input={input_path}: no clips in this folder{' or below it' if recursive else ''} (files "
                         f"there: {search.skipped_text() or 'none'}); the extensions taken are extensions=.")
    return search.files


def run_prediction(cfg: DictConfig) -> PredictResult:
    from mmbehave.checkpoints.loading import load_command_model

    settings = read_predict_settings(cfg)  # every option checked before the model loads or a clip is decoded
    every_clip = [] if settings.merge else find_clips(settings.input, list(settings.extensions), settings.recursive)
    clips = shard_of(every_clip, settings.shard)
    camtrap = prepare_camtrap(settings) if settings.output_format == "camtrap_dp" else None

    def refuse_output_over_inputs(path: Path) -> None:
        check_output(settings.output, settings.output_format,
                     inputs=[*clips, *settings.merge, path, *settings.extra_inputs],
                     sources=read_sources(settings.input, camtrap) if settings.input else [])

    loaded = load_command_model(settings.model, settings.device, settings.download_dir,
                                before_loading=refuse_output_over_inputs, precision=settings.precision)
    request = table_request(settings, loaded.trained, camtrap)
    if settings.merge:
        from mmbehave.predicting.merge import merge_shards

        return PredictResult(*merge_shards(list(settings.merge), loaded.trained, request, settings.allow_partial))
    from mmbehave.predicting.clip_loading import Segmenting

    segmenting = Segmenting(settings.answers.segment_length(loaded.trained), settings.answers.segment_stride)
    if settings.estimate:
        from mmbehave.predicting.estimate import estimate

        estimate(loaded.trained, clips, segmenting, settings.device, settings.batch_size, settings.workers,
                 decoder_threads(settings.workers))
        return PredictResult(None, [], [])
    records_path, _ = state_paths(settings.output)
    # one run per output: a second waits, then finds this one's clips done (without it both did all the work)
    with exclusive(records_path, waiting=f"another predict run is writing {settings.output}; waiting for it to "
                                         "end (the clips it predicts are then skipped here)"):
        return predict_into(settings, loaded, request, every_clip, clips, segmenting)


def predict_into(settings: PredictSettings, loaded, request, every_clip: list[Path], clips: list[Path],
                 segmenting) -> PredictResult:
    """Predict the clips not yet in the output's records (holding its lock), then rebuild the tables."""
    from mmbehave.predicting.clip_loading import ClipFiles

    trained, model = loaded.trained, request.provenance["model_sha256"]
    records_path, errors_path = state_paths(request.output)
    for path in (records_path, errors_path):  # before anything is appended: a torn line would swallow the next one
        repair_torn_tail(path)
    if settings.shard is not None:  # before any record: merge= checks the season is whole by these
        write_manifest(request.output, settings.shard, every_clip, settings.input, model)
    records = read_records(records_path)
    todo = [clip for clip in clips if not is_done(records.get(str(clip)), clip, model)]
    log.info("Predicting %d clip(s) with %s (%d already in %s), %d worker(s)", len(todo), loaded.path,
             len(clips) - len(todo), records_path, settings.workers)
    files = ClipFiles(todo, trained.preprocess, segmenting, decoder_threads=decoder_threads(settings.workers))
    rows = RowStream(request, trained) if request.camtrap is None else None  # camtrap_dp: a package at the end
    if rows is not None:
        rows.start([records[str(clip)] for clip in clips if is_done(records.get(str(clip)), clip, model)])
    with stop_on_signals(lambda: "run the same command again to continue: the clips done are kept"):
        archive_pass(trained, files, settings, records_path, errors_path, model, rows)
    return finish(clips, records_path, errors_path, trained, request)


def archive_pass(trained, files, settings: PredictSettings, records_path: Path, errors_path: Path, model: str,
                 rows: RowStream | None) -> None:
    from mmbehave.core.progress import show_progress
    from mmbehave.predicting.archive import predict_archive

    shard = settings.shard or ""

    def on_batch(records, failures) -> None:  # on disk before the next batch: a kill loses at most this one
        for record in records:
            record.model, record.shard = model, shard
        append_records(records_path, records)
        if rows is not None:
            rows.append(records)
        if failures:
            append_errors(errors_path, [(str(path), reason) for path, reason in failures])

    if not files.files:
        return
    run = predict_archive(trained, files, device=settings.device, batch_size=settings.batch_size,
                          num_workers=settings.workers, on_batch=on_batch,
                          progress=show_progress(settings.progress) and len(files) > 1)
    log.info("Predicted %d clip(s) in %.1f s (%.2f clips/s); %d unreadable", run.predicted, run.seconds,
             (run.predicted + len(run.failures)) / max(run.seconds, 1e-9), len(run.failures))


def finish(clips: list[Path], records_path: Path, errors_path: Path, trained, request) -> PredictResult:
    """The tables of every clip of this input, in input order, from the records (a file changed since its
    record is left out: it was predicted again, or failed)."""
    from mmbehave.predicting.outputs import write_tables

    records, errors = read_records(records_path), read_errors(errors_path)
    model = request.provenance["model_sha256"]
    done_keys = {str(clip) for clip in clips if is_done(records.get(str(clip)), clip, model)}
    done = [records[str(clip)] for clip in clips if str(clip) in done_keys]
    failures = [(clip, errors[str(clip)]) for clip in clips if str(clip) in errors and str(clip) not in done_keys]
    check_every_clip_accounted(clips, done_keys, {str(path) for path, _ in failures}, records_path)
    if not done:
        return PredictResult(None, [], failures)
    rows = write_tables(done, trained, request)
    return PredictResult(request.output, rows, failures)


def check_every_clip_accounted(clips: list[Path], done: set[str], failed: set[str], records_path: Path) -> None:
    """Each input clip is in the records or in the errors table; else the run says which, and exits non-zero,
    instead of writing a table with a hole in it."""
    missing = [str(clip) for clip in clips if str(clip) not in done and str(clip) not in failed]
    if missing:
        raise StorageError(f"{len(missing)} of {len(clips)} clip(s) are neither in {records_path.name} nor in the "
                           f"errors table (first: {', '.join(missing[:3])}); run the same command again to predict "
                           "them.")


def is_done(record, clip: Path, model: str) -> bool:
    """A record of this very file (same size and mtime), made by this model."""
    try:
        return record is not None and record.model == model and record.key == file_key(clip)
    except OSError:  # the file went away since: its record stands
        return record is not None and record.model == model


def decoder_threads(workers: int) -> int:
    """Decoder threads per clip: the cores the workers leave free, shared out (1 when they use them all)."""
    from mmbehave.predicting.clip_loading import usable_cores

    return max(1, usable_cores() // max(workers, 1))


def table_request(settings: PredictSettings, trained, camtrap):
    from mmbehave.predicting.outputs import TableRequest
    from mmbehave.predicting.provenance import model_provenance
    from mmbehave.predicting.review import review_head

    output, options = settings.output, settings.answers
    input_root = settings.input or output.parent
    return TableRequest(output=output, options=options, thresholds=options.model_thresholds(trained),
                        top_k=settings.top_k, provenance=model_provenance(trained),
                        input_root=input_root if input_root.is_dir() else input_root.parent,
                        review_head=review_head(trained, settings.review_head) if settings.review else None,
                        camtrap=camtrap)


def prepare_camtrap(settings: PredictSettings):
    """Checked before any clip is read: a wrong package= fails at once."""
    from mmbehave.data.camtrap_dp.exporter import CamtrapExport

    return CamtrapExport.prepare(str(settings.input) if settings.input else None, settings.package)


def read_sources(input_path: Path, camtrap) -> list[Path]:
    """Folders predict reads and must never write into: the raw/ of a dataset that holds the input, and the raw/
    of the imported Camtrap DP dataset whose deployments and media a camtrap_dp output copies."""
    sources = []
    for folder in [input_path.expanduser().resolve(), *input_path.expanduser().resolve().parents]:
        if folder.name == "raw" and (folder / "metadata").is_dir():
            sources.append(folder)
            break
    if camtrap is not None and camtrap.dataset is not None:
        sources.append(camtrap.dataset.root / "raw")
    return sources
