"""``distill.*`` read and checked once (conf/distill.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from mmbehave.core.errors import ConfigError
from mmbehave.core.precision import read_precision


@dataclass(frozen=True)
class DistillSettings:
    teacher: str
    alpha: float
    temperature: float
    unlabeled: str | None
    min_confidence: float
    balance: bool
    max_unlabeled: int | None
    teacher_batch_size: int
    teacher_precision: str
    cache_dir: Path

    @classmethod
    def from_config(cls, cfg: DictConfig) -> DistillSettings:
        node = cfg.distill
        alpha, temperature = float(node.alpha), float(node.temperature)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"distill.alpha={alpha}: must be within [0, 1] (1: the teacher alone, 0: the labels alone).")
        if temperature <= 0:
            raise ConfigError(f"distill.temperature={temperature}: must be > 0 (1: the teacher's own probabilities).")
        confidence = float(node.min_confidence)
        if not 0.0 <= confidence <= 1.0:
            raise ConfigError(f"distill.min_confidence={confidence}: a probability, within [0, 1].")
        limit = node.get("max_unlabeled")
        if limit is not None and int(limit) < 1:
            raise ConfigError(f"distill.max_unlabeled={limit}: at least 1, or null for all.")
        if int(node.teacher_batch_size) < 1:
            raise ConfigError(f"distill.teacher_batch_size={node.teacher_batch_size}: at least 1.")
        unlabeled = node.get("unlabeled")
        return cls(teacher=str(cfg.get("teacher") or ""), alpha=alpha, temperature=temperature,
                   unlabeled=str(unlabeled) if unlabeled not in (None, "") else None, min_confidence=confidence,
                   balance=bool(node.balance), max_unlabeled=int(limit) if limit is not None else None,
                   teacher_batch_size=int(node.teacher_batch_size),
                   teacher_precision=read_precision(node.teacher_precision, str(cfg.hardware.device),
                                                    "distill.teacher_precision"),
                   cache_dir=Path(str(node.cache_dir)).expanduser().resolve())
