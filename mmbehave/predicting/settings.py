"""predict's options (conf/predict.yaml), read and checked once before the model loads or a clip is decoded,
as train's are (training/settings.py): after this, the work reads these, and the raw config reaches only the
model's loader (which model: checkpoint= | run_id= | model=)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from omegaconf.errors import InterpolationResolutionError

from mmbehave.checkpoints.loading import ModelSource
from mmbehave.core.errors import ConfigError
from mmbehave.core.precision import read_precision
from mmbehave.data.media_files import MEDIA_EXTENSIONS
from mmbehave.predicting.options import AnswerOptions, positive_int, read_answer_options
from mmbehave.predicting.shards import read_shard

FORMATS = ("csv", "camtrap_dp")


@dataclass(frozen=True)
class PredictSettings:
    model: ModelSource
    input: Path | None             # a clip or a folder (None: merge= reads no input)
    extensions: tuple[str, ...]
    recursive: bool
    shard: str | None              # "i/N" (checked)
    merge: tuple[Path, ...]        # the shards' tables to join
    allow_partial: bool
    output_format: str             # csv | camtrap_dp
    output: Path
    batch_size: int
    top_k: int
    workers: int                   # processes reading clips (0: this one)
    device: str
    precision: str                 # auto | fp32 | bf16 (models.precision_plan)
    estimate: bool
    progress: Any                  # true | false | auto (core.progress)
    review_head: str | None        # review=true: the head asked for (None: the model's first single-label head)
    review: bool
    package: str | None            # camtrap_dp: the imported package the clips came from
    event_table: Path | None
    answers: AnswerOptions
    download_dir: Path | None      # where an MLflow model is downloaded (None: a temp folder)

    @property
    def extra_inputs(self) -> list[Path]:
        """Files predict reads besides the clips, which its output must never replace."""
        return [self.event_table] if self.event_table else []


def read_predict_settings(cfg: DictConfig) -> PredictSettings:
    output_format = str(cfg.get("format") or "csv")
    if output_format not in FORMATS:
        raise ConfigError(f"format={output_format}: use {' or '.join(FORMATS)}.")
    # in the order a user meets them: the numbers, the answers, then where the output goes
    batch_size, top_k = positive_int("batch_size", cfg.batch_size), positive_int("top_k", cfg.top_k)
    workers = read_workers(cfg.get("num_workers", "auto"))
    answers = read_answer_options(cfg, output_format)
    read_shard(cfg.get("shard"))
    return PredictSettings(
        model=ModelSource.from_config(cfg), input=Path(str(cfg.input)).expanduser() if cfg.get("input") else None,
        extensions=tuple(cfg.get("extensions") or MEDIA_EXTENSIONS), recursive=bool(cfg.recursive),
        shard=None if cfg.get("shard") is None else str(cfg.shard),
        merge=tuple(Path(str(p)).expanduser() for p in (cfg.get("merge") or [])),
        allow_partial=bool(cfg.get("allow_partial", False)), output_format=output_format,
        output=output_path(cfg, output_format), batch_size=batch_size, top_k=top_k, workers=workers,
        device=str(cfg.device), precision=read_precision(cfg.get("precision", "auto"), str(cfg.device), "precision"),
        estimate=bool(cfg.get("estimate")), progress=cfg.get("progress", "auto"),
        review=bool(cfg.get("review")), review_head=cfg.get("review_head"), package=cfg.get("package"),
        event_table=Path(str(cfg.event_table)) if cfg.get("event_table") else None,
        answers=answers, download_dir=model_download_dir(cfg))


def read_workers(value) -> int:
    """``num_workers``: auto (one per core) or a count (0: read clips in this process, for debugging)."""
    from mmbehave.predicting.clip_loading import usable_cores

    if str(value).lower() == "auto":
        return usable_cores()
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"num_workers={value}: auto, or a whole number >= 0 (0: read clips in this process).")
    return int(value)


def output_path(cfg: DictConfig, output_format: str) -> Path:
    """output=, else predictions.csv (camtrap_dp/) in this run's folder."""
    if cfg.output:
        return Path(str(cfg.output)).expanduser()
    try:
        folder = Path(cfg.paths.output_dir)
    except InterpolationResolutionError:
        raise ConfigError("output= is required when predict runs without its command line (no run folder).") from None
    return folder / ("camtrap_dp" if output_format == "camtrap_dp" else "predictions.csv")


def model_download_dir(cfg: DictConfig) -> Path | None:
    """Where a model from MLflow is downloaded: this run's folder; None (a temp folder) where there is no Hydra
    run to name one (run_prediction called from Python)."""
    try:
        return Path(cfg.paths.output_dir) / "model"
    except InterpolationResolutionError:
        return None
