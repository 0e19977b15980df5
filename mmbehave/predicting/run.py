"""The work of ``python -m mmbehave.predict`` (the command's docstring says what users get): clips found, decoded
as in training, batched through the model, answered per clip (and segment, event), written as tables or a
Camtrap DP package."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from omegaconf import DictConfig

from mmbehave.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mmbehave.data.clip_inputs import ProcessedClip
    from mmbehave.predicting.options import AnswerOptions
    from mmbehave.predicting.tables import ClipPrediction

log = logging.getLogger("mmbehave.predict")
FORMATS = ("csv", "camtrap_dp")


@dataclass
class ClipInput:
    path: Path
    video: torch.Tensor   # (3, T, H, W) float in [0, 1]
    audio: torch.Tensor   # (1, n_mels, time) standardised log-mel
    has_video: bool       # False for an audio file (a passive acoustic recorder's)
    has_audio: bool
    start: float = 0.0    # segment_stride=: the window on the clip's timeline, in seconds (end None: whole clip)
    end: float | None = None


def find_clips(input_path: str, extensions: list[str], recursive: bool) -> list[Path]:
    """The clip files named by ``input``: itself if a file, else the folder's files with a clip extension
    (video, or audio: recorders without a camera)."""
    if not input_path:
        raise InputError("input= is required: a clip file or a folder of clips.")
    path = Path(input_path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"input={input_path}: no such file or folder.")
    suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    candidates = path.rglob("*") if recursive else path.iterdir()
    clips = sorted(p for p in candidates if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))
    if not clips:
        raise InputError(f"input={input_path}: no clips ({', '.join(sorted(suffixes))}) in this folder"
                         f"{' or below it' if recursive else ''}.")
    return clips


def model_input(path: Path, clip: ProcessedClip, trained, start: float = 0.0, end: float | None = None) -> ClipInput:
    """Preprocessed clip → model inputs, converted as mmbehave.data.dataset converts the training clips."""
    import torch

    video = clip.frames.permute(1, 0, 2, 3).float().div_(255.0)  # (T, C, H, W) uint8 → (C, T, H, W) in [0, 1]
    audio = ((torch.from_numpy(clip.mel).float() - trained.mel_mean) / trained.mel_std).unsqueeze(0)
    return ClipInput(path, video, audio, clip.has_video, clip.has_audio, start, end)


def load_clip(path: Path, trained) -> ClipInput:
    """Raw clip → model inputs, exactly as training saw them. Raises ClipReadError for undecodable files."""
    from mmbehave.data.clip_inputs import preprocess_clip

    return model_input(path, preprocess_clip(path, None, trained.preprocess), trained)


def load_inputs(path: Path, trained, options: AnswerOptions) -> Iterator[ClipInput]:
    """The clip whole, or with segment_stride= each of its windows, decoded in one pass over the file."""
    if options.segment_stride is None:
        yield load_clip(path, trained)
        return
    from mmbehave.predicting.segments import iter_segments

    for segment in iter_segments(path, trained.preprocess, options.segment_length(trained), options.segment_stride):
        yield model_input(path, segment.clip, trained, segment.start, segment.end)


def missing_input_warning(clip, modalities: tuple[str, ...]) -> str:
    """Empty, or why the model has nothing to go on for this clip (then it answers from its biases alone).
    ``clip``: anything with has_video / has_audio (a ClipInput, a ClipPrediction)."""
    has = {"video": clip.has_video, "audio": clip.has_audio}
    if any(has[m] for m in modalities):
        return ""
    missing = " and ".join(f"no {m}" for m in modalities)
    return f"{missing}: this {'+'.join(modalities)} model answers from its biases alone"


def predict_probabilities(trained, clips: list[ClipInput], device: str) -> list[dict[str, np.ndarray]]:
    """{head: probabilities (softmax, or sigmoid for a multi head)} for each input, in one forward pass."""
    import torch

    from mmbehave.metrics.epoch_scores import probabilities

    inputs = {}
    if "video" in trained.modalities:
        inputs["video"] = torch.stack([c.video for c in clips]).to(device)
        inputs["video_present"] = torch.tensor([c.has_video for c in clips], device=device)
    if "audio" in trained.modalities:
        inputs["audio"] = torch.stack([c.audio for c in clips]).to(device)
        inputs["audio_present"] = torch.tensor([c.has_audio for c in clips], device=device)
    with torch.no_grad():
        output = trained.model(**inputs)
    probs = {head.name: probabilities(head, output.logits[head.name]) for head in trained.heads}
    return [{head: values[row] for head, values in probs.items()} for row in range(len(clips))]


def predict_clips(trained, clips: list[Path], options: AnswerOptions, cfg: DictConfig, batch_size: int
                  ) -> tuple[list[ClipPrediction], list[tuple[Path, str]]]:
    """Every readable clip's per-segment probabilities, in input order; [(unreadable clip, reason)].

    Inputs are batched across clips and segments; a clip that fails part-way loses the segments it had."""
    from tqdm.auto import tqdm

    from mmbehave.core.errors import ClipReadError
    from mmbehave.core.progress import show_progress
    from mmbehave.predicting.tables import ClipPrediction

    predictions: dict[Path, ClipPrediction] = {}
    failures: list[tuple[Path, str]] = []
    pending: list[ClipInput] = []

    def flush() -> None:
        for clip, probs in zip(pending, predict_probabilities(trained, pending, cfg.device)):
            predictions[clip.path].windows.append((clip.start, clip.end))
            predictions[clip.path].probs.append(probs)
        pending.clear()

    progress = show_progress(cfg.progress) and len(clips) > 1
    for path in tqdm(clips, desc="predicting", unit="clip", disable=not progress):
        try:
            for clip in load_inputs(path, trained, options):
                predictions.setdefault(path, ClipPrediction(path, clip.has_video, clip.has_audio))
                pending.append(clip)
                if len(pending) == batch_size:
                    flush()
        except Exception as error:  # one odd file must not stop a folder: report it and go on
            reason = error.reason if isinstance(error, ClipReadError) else f"{type(error).__name__}: {error}"
            failures.append((path, reason))
            log.warning("Skipped %s: %s", path, reason)
            predictions.pop(path, None)
            pending[:] = [clip for clip in pending if clip.path != path]
    if pending:
        flush()
    return [predictions[path] for path in clips if path in predictions], failures


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


def model_download_dir(cfg: DictConfig) -> Path | None:
    """Where a model from MLflow is downloaded: this run's folder; None (a temp folder) where there is no Hydra
    run to name one (run_prediction called from Python)."""
    from omegaconf.errors import InterpolationResolutionError

    try:
        return Path(cfg.paths.output_dir) / "model"
    except InterpolationResolutionError:
        return None


def run_prediction(cfg: DictConfig) -> tuple[Path | None, list[dict], list[tuple[Path, str]]]:
    """Returns (the CSV or Camtrap DP folder written, or None; its rows; [(unreadable clip, reason)])."""
    import pandas as pd

    from mmbehave.checkpoints.loading import load_command_model
    from mmbehave.core.atomic import atomic_path
    from mmbehave.predicting.answers import class_names, combine
    from mmbehave.predicting.events import event_rows, plan_events
    from mmbehave.predicting.options import positive_int, read_answer_options
    from mmbehave.predicting.output_checks import check_output
    from mmbehave.predicting.provenance import model_provenance
    from mmbehave.predicting.tables import (
        camtrap_rows,
        clip_row,
        companion_path,
        segment_rows,
    )

    batch_size, top_k = positive_int("batch_size", cfg.batch_size), positive_int("top_k", cfg.top_k)
    clips = find_clips(cfg.input, list(cfg.extensions), bool(cfg.recursive))
    output_format = str(cfg.get("format") or "csv")
    if output_format not in FORMATS:
        raise ConfigError(f"format={output_format}: use {' or '.join(FORMATS)}.")
    options = read_answer_options(cfg, output_format)  # before the model loads or a clip is decoded
    camtrap = None
    if output_format == "camtrap_dp":  # checked before any clip is read: a wrong package= fails at once
        from mmbehave.data.camtrap_dp.exporter import CamtrapExport

        camtrap = CamtrapExport.prepare(cfg.input, cfg.get("package"))

    def refuse_output_over_inputs(path: Path) -> None:  # the default output is a new file in this run's folder
        if cfg.output:
            check_output(Path(cfg.output).expanduser(), output_format,
                         inputs=[*clips, path, *([Path(str(cfg.event_table))] if cfg.get("event_table") else [])],
                         sources=read_sources(Path(cfg.input), camtrap))

    loaded = load_command_model(cfg, cfg.device, model_download_dir(cfg), before_loading=refuse_output_over_inputs)
    path, trained = loaded.path, loaded.trained
    thresholds = options.model_thresholds(trained)
    events = None
    if options.events:  # planned from the file list, before decoding: a bad event table fails at once
        input_root = Path(cfg.input).expanduser()
        events = plan_events(clips, options.events, input_root if input_root.is_dir() else input_root.parent)
    log.info("Predicting %d clip(s) with %s", len(clips), path)

    predictions, failures = predict_clips(trained, clips, options, cfg, batch_size)
    if not predictions:
        return None, [], failures
    provenance = model_provenance(trained)
    multi = {head.name for head in trained.heads if head.multi}
    clip_probs = {p.path: combine(p.probs, options.aggregate, multi) for p in predictions}
    rows = [clip_row(p, clip_probs[p.path], missing_input_warning(p, trained.modalities), trained, options, thresholds,
                     top_k, provenance) for p in predictions]
    for row in rows:
        if row["warning"]:
            log.warning("%s: %s", row["path"], row["warning"])
    default = "camtrap_dp" if camtrap else "predictions.csv"
    output = Path(cfg.output).expanduser() if cfg.output else Path(cfg.paths.output_dir) / default
    if camtrap:
        from mmbehave import __version__

        camtrap.write(output, camtrap_rows(rows), classified_by=f"mmbehave {__version__} "
                                                               f"{trained.mlflow_run_id or 'no-mlflow-run'}")
        return output, rows, failures
    tables = {output: rows}
    if options.segments_table:
        tables[companion_path(output, "segments")] = [
            row for p in predictions for row in segment_rows(p, trained, options, thresholds, provenance)]
    if events:
        tables[companion_path(output, "events")] = event_rows(events, clip_probs, class_names(trained), thresholds,
                                                              options.wide, provenance, trained.heads)
    for table_path, table_rows in tables.items():  # every table computed before the first is written
        with atomic_path(table_path) as tmp:
            pd.DataFrame(table_rows).to_csv(tmp, index=False)
    return output, rows, failures
