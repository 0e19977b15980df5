"""Predict species and behaviour for new, unlabelled clips: one CSV row per clip.

    python -m mmbehave.predict checkpoint=<best.pth> input=field_clips/ output=predictions.csv
    python -m mmbehave.predict run_id=<MLflow run id> input=clip.mp4 output=clip.csv top_k=5

    clip file(s) ─► preprocess_clip (the training preprocessing, with the settings stored in the checkpoint)
      ─► frames / 255, log-mel standardised with the training clips' mean and std   (as mmbehave.data.dataset)
      ─► model ─► softmax per head ─► path, clip_id, has_video, has_audio, species, species_prob, behavior,
                                      behavior_prob, species_top<k>, behavior_top<k> ("name:prob|...", best first),
                                      warning (why a clip gave the model nothing to go on; usually empty)

With ``format=camtrap_dp`` the output is a Camtrap DP 1.0 package instead (a folder: observations.csv with one
row per clip, media.csv, deployments.csv, datapackage.json; see ``mmbehave/data/camtrap_dp_export.py``).

A folder is searched (recursively by default) for files with a video or audio extension. A clip that cannot be
decoded is reported on stderr and left out; the others are predicted. A clip without an audio track is
predicted from its video alone (has_audio=false), an audio file from its sound alone (has_video=false); a clip
with none of the model's modalities is predicted from the model's biases, with a warning in its row. Exit status: 0 written; 1 no clip could be read; 2 bad checkpoint or input.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from mmbehave.core.cli import command
from mmbehave.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger("mmbehave.predict")
FORMATS = ("csv", "camtrap_dp")


@dataclass
class ClipInput:
    path: Path
    video: torch.Tensor   # (3, T, H, W) float in [0, 1]
    audio: torch.Tensor   # (1, n_mels, time) standardised log-mel
    has_video: bool       # False for an audio file (a passive acoustic recorder's)
    has_audio: bool


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


def load_clip(path: Path, trained) -> ClipInput:
    """Raw clip → model inputs, exactly as training saw them. Raises ClipReadError for undecodable files."""
    import torch

    from mmbehave.data.preprocessing import preprocess_clip

    clip = preprocess_clip(path, None, trained.preprocess)
    video = clip.frames.permute(1, 0, 2, 3).float().div_(255.0)  # (T, C, H, W) uint8 → (C, T, H, W) in [0, 1]
    audio = ((torch.from_numpy(clip.mel).float() - trained.mel_mean) / trained.mel_std).unsqueeze(0)
    return ClipInput(path, video, audio, clip.has_video, clip.has_audio)


def missing_input_warning(clip: ClipInput, modalities: tuple[str, ...]) -> str:
    """Empty, or why the model has nothing to go on for this clip (then it answers from its biases alone)."""
    has = {"video": clip.has_video, "audio": clip.has_audio}
    if any(has[m] for m in modalities):
        return ""
    missing = " and ".join(f"no {m}" for m in modalities)
    return f"{missing}: this {'+'.join(modalities)} model answers from its biases alone"


def top_k_text(names: list[str], probs, k: int) -> str:
    order = probs.argsort()[::-1][:k]
    return "|".join(f"{names[i]}:{probs[i]:.4f}" for i in order)


def predict_batch(trained, clips: list[ClipInput], top_k: int, device: str) -> list[dict]:
    import torch

    inputs = {}
    if "video" in trained.modalities:
        inputs["video"] = torch.stack([c.video for c in clips]).to(device)
        inputs["video_present"] = torch.tensor([c.has_video for c in clips], device=device)
    if "audio" in trained.modalities:
        inputs["audio"] = torch.stack([c.audio for c in clips]).to(device)
        inputs["audio_present"] = torch.tensor([c.has_audio for c in clips], device=device)
    with torch.no_grad():
        output = trained.model(**inputs)
    species = torch.softmax(output.species_logits.float(), dim=-1).cpu().numpy()
    behaviors = torch.softmax(output.behavior_logits.float(), dim=-1).cpu().numpy()
    names = {"species": trained.classes.species, "behavior": trained.classes.behaviors}
    rows = []
    for clip, head_probs in zip(clips, zip(species, behaviors)):
        row = {"path": str(clip.path), "clip_id": clip.path.stem, "has_video": clip.has_video, "has_audio": clip.has_audio}
        for head, probs in zip(("species", "behavior"), head_probs):
            best = int(probs.argmax())
            row[head] = names[head][best]
            row[f"{head}_prob"] = round(float(probs[best]), 4)
        for head, probs in zip(("species", "behavior"), head_probs):
            row[f"{head}_top{top_k}"] = top_k_text(names[head], probs, top_k)
        row["warning"] = missing_input_warning(clip, trained.modalities)
        if row["warning"]:
            log.warning("%s: %s", clip.path, row["warning"])
        rows.append(row)
    return rows


def run_prediction(cfg: DictConfig) -> tuple[Path | None, list[dict], list[tuple[Path, str]]]:
    """Returns (the CSV or Camtrap DP folder written, or None; its rows; [(unreadable clip, reason)])."""
    import pandas as pd
    from tqdm.auto import tqdm

    from mmbehave.core.atomic import atomic_path
    from mmbehave.core.errors import ClipReadError
    from mmbehave.core.progress import show_progress
    from mmbehave.training.tracking import resolve_tracking_uri
    from mmbehave.training.trained_model import checkpoint_path, load_trained_model

    clips = find_clips(cfg.input, list(cfg.extensions), bool(cfg.recursive))
    output_format = str(cfg.get("format") or "csv")
    if output_format not in FORMATS:
        raise ConfigError(f"format={output_format}: use {' or '.join(FORMATS)}.")
    camtrap = None
    if output_format == "camtrap_dp":  # checked before any clip is read: a wrong package= fails at once
        from mmbehave.data.camtrap_dp_export import CamtrapExport

        camtrap = CamtrapExport.prepare(cfg.input, cfg.get("package"))
    path = checkpoint_path(cfg.checkpoint, cfg.run_id, resolve_tracking_uri(cfg.mlflow.tracking_uri))
    trained = load_trained_model(path, cfg.device)
    top_k = max(1, int(cfg.top_k))
    log.info("Predicting %d clip(s) with %s", len(clips), path)

    rows: list[dict] = []
    failures: list[tuple[Path, str]] = []
    pending: list[ClipInput] = []
    progress = show_progress(cfg.progress) and len(clips) > 1
    for clip in tqdm(clips, desc="predicting", unit="clip", disable=not progress):
        try:
            pending.append(load_clip(clip, trained))
        except ClipReadError as error:
            failures.append((clip, error.reason))
            log.warning("Skipped %s", error)
        except Exception as error:  # one odd file must not stop a folder: report it and go on
            failures.append((clip, f"{type(error).__name__}: {error}"))
            log.warning("Skipped %s: %s: %s", clip, type(error).__name__, error)
        if len(pending) == int(cfg.batch_size):
            rows += predict_batch(trained, pending, top_k, cfg.device)
            pending = []
    if pending:
        rows += predict_batch(trained, pending, top_k, cfg.device)
    if not rows:
        return None, rows, failures
    default = "camtrap_dp" if camtrap else "predictions.csv"
    output = Path(cfg.output).expanduser() if cfg.output else Path(cfg.paths.output_dir) / default
    if camtrap:
        from mmbehave import __version__

        camtrap.write(output, rows, classified_by=f"mmbehave {__version__} {trained.mlflow_run_id or 'no-mlflow-run'}")
        return output, rows, failures
    with atomic_path(output) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return output, rows, failures


@command("predict")
def main(cfg: DictConfig) -> None:
    output, rows, failures = run_prediction(cfg)
    if failures:  # each was logged as it happened; the summary goes to stderr for scripts
        names = ", ".join(str(clip) for clip, _ in failures)
        print(f"{len(failures)} of {len(failures) + len(rows)} clip(s) could not be read and were skipped: {names}",
              file=sys.stderr)
    if output is None:
        print(f"error: none of the {len(failures)} clip(s) could be read; nothing written.", file=sys.stderr)
        sys.exit(1)
    print(f"Predicted {len(rows)} clip(s): {output}")


if __name__ == "__main__":
    main()
