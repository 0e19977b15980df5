"""The answer options of ``mmbehave.predict``, read and checked before the model is loaded or a clip decoded:
a typo in threshold= or event_by= must fail in a second with one line, not after an hour of decoding.

    columns=narrow|wide  threshold=  segment_seconds=  segment_stride=  aggregate=mean|max  segments=
    event_by=  event_table=
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal

from omegaconf import DictConfig

from mmbehave.core.errors import ConfigError
from mmbehave.core.settings import typed_view
from mmbehave.predicting.events import EventGrouping, read_event_grouping
from mmbehave.predicting.thresholds import (
    Threshold,
    resolve_thresholds,
    thresholds_from_option,
)


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


@dataclass(frozen=True)
class AnswerKeys:
    """predict's answer keys as given (conf/predict.yaml), typed; ``read_answer_options`` checks how they combine."""

    columns: Literal["narrow", "wide"] = "narrow"
    aggregate: Literal["mean", "max"] = "mean"
    segment_seconds: float | None = None
    segment_stride: float | None = None
    segments: bool = False
    threshold: Any = None                 # a probability, or {head: probability}
    event_by: Any = None                  # a gap in seconds, or a column of event_table
    event_table: str | None = None


def read_answer_options(cfg: DictConfig, output_format: str) -> AnswerOptions:
    keys = typed_view(AnswerKeys, {f.name: cfg[f.name] for f in dataclasses.fields(AnswerKeys) if f.name in cfg}, "",
                      defaults=True)
    for key in ("segment_seconds", "segment_stride"):
        value = getattr(keys, key)
        if value is not None and not value > 0:
            raise ConfigError(f"{key}={value}: a number of seconds > 0, or null.")
    if keys.segment_seconds is not None and keys.segment_stride is None:
        raise ConfigError(f"segment_seconds={keys.segment_seconds} cuts clips only with segment_stride=<seconds between "
                          f"segment starts>; add it (segment_stride={keys.segment_seconds} for back-to-back segments).")
    if keys.segments and keys.segment_stride is None:
        raise ConfigError("segments=true lists the segments of segment_stride=<seconds>; add it, or drop segments=true.")
    options = AnswerOptions(
        wide=keys.columns == "wide", thresholds=thresholds_from_option(keys.threshold),
        segment_seconds=keys.segment_seconds, segment_stride=keys.segment_stride, aggregate=keys.aggregate,
        segments_table=keys.segments, events=read_event_grouping(keys.event_by, keys.event_table))
    if output_format != "csv":
        extra = [name for name, used in (("columns=wide", options.wide), ("segments=true", keys.segments),
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
