"""The answer options of ``mmbehave.predict``, read and checked before the model is loaded or a clip decoded:
a typo in threshold= or event_by= must fail in a second with one line, not after an hour of decoding.

    columns=narrow|wide  threshold=  segment_seconds=  segment_stride=  aggregate=mean|max  segments=
    event_by=  event_table=
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any

from omegaconf import DictConfig

from mmbehave.core.errors import ConfigError
from mmbehave.predicting.answers import AGGREGATES
from mmbehave.predicting.events import EventGrouping, read_event_grouping
from mmbehave.predicting.thresholds import (
    Threshold,
    resolve_thresholds,
    thresholds_from_option,
)

COLUMNS = ("narrow", "wide")


@dataclass(frozen=True)
class AnswerOptions:
    wide: bool                             # columns=wide: one p(<head>=<class>) column per class
    thresholds: dict[str, float]           # from threshold=, by head ("*": every head); the checkpoint's fill the others
    segment_seconds: float | None          # None: the model's clip_seconds
    segment_stride: float | None           # None: no segmentation, the whole clip is one window
    aggregate: str                         # how segment probabilities combine per clip
    segments_table: bool                   # segments=true: also <output stem>_segments.csv
    events: EventGrouping | None           # event_by=: also <output stem>_events.csv

    def segment_length(self, trained) -> float:
        return self.segment_seconds or trained.preprocess.clip_seconds

    def model_thresholds(self, trained) -> dict[str, Threshold]:
        """threshold= where given, else what the checkpoint stores, per head of the model."""
        return resolve_thresholds(self.thresholds, trained)


def read_answer_options(cfg: DictConfig, output_format: str) -> AnswerOptions:
    columns = str(cfg.get("columns") or "narrow")
    if columns not in COLUMNS:
        raise ConfigError(f"columns={columns}: use narrow (label, prob and top-k per head) or wide (also one "
                          "p(<head>=<class>) column per class).")
    aggregate = str(cfg.get("aggregate") or "mean")
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate={aggregate}: use mean or max (how a clip's segment probabilities combine).")
    segment_seconds = _positive_seconds("segment_seconds", cfg.get("segment_seconds"))
    segment_stride = _positive_seconds("segment_stride", cfg.get("segment_stride"))
    if segment_seconds is not None and segment_stride is None:
        raise ConfigError(f"segment_seconds={segment_seconds} cuts clips only with segment_stride=<seconds between "
                          f"segment starts>; add it (segment_stride={segment_seconds} for back-to-back segments).")
    segments_table = _flag("segments", cfg.get("segments", False))
    if segments_table and segment_stride is None:
        raise ConfigError("segments=true lists the segments of segment_stride=<seconds>; add it, or drop segments=true.")
    options = AnswerOptions(
        wide=columns == "wide", thresholds=thresholds_from_option(cfg.get("threshold")),
        segment_seconds=segment_seconds, segment_stride=segment_stride, aggregate=aggregate,
        segments_table=segments_table, events=read_event_grouping(cfg.get("event_by"), cfg.get("event_table")))
    if output_format != "csv":
        extra = [name for name, used in (("columns=wide", options.wide), ("segments=true", segments_table),
                                         ("event_by", options.events is not None)) if used]
        if extra:
            raise ConfigError(f"{extra[0]} adds to the CSV tables; with format={output_format} use format=csv "
                              "for it (or run predict twice).")
    return options


def positive_int(key: str, value: Any) -> int:
    """``value`` as a whole number >= 1, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, Real) or value != int(value) or value < 1:
        raise ConfigError(f"{key}={value}: a whole number of at least 1.")
    return int(value)


def _positive_seconds(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ConfigError(f"{key}={value}: a number of seconds > 0, or null.")
    return float(value)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value}: true or false.")
    return value
