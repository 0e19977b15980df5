"""The names of the metrics every training epoch records: what ``training.monitor`` and ``optimized_metric``
may name. Known from the config before the data is read, so that a misspelt name fails in a second, not after
an epoch.

    train/loss  train/lr  fusion/num_params  time/train_s  time/val_s
    val/loss  val/macro_f1 (mean of the heads' macro-F1)
    val/<head>_{acc, macro_f1, macro_ap, micro_f1, rare_macro_f1}       every head (model.heads)
    val/<head>_samples_f1                                               multi-label heads
"""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from mmbehave.core.errors import ConfigError
from mmbehave.core.settings import objectives_of
from mmbehave.domain.heads import HeadSpec, heads_from_config

# Long-tail scores (class_metrics.py) logged each epoch besides accuracy and macro-F1: the ranking quality
# (macro AP), the pooled score (micro-F1, the accuracy of a single-label head) and the rare classes' macro-F1.
# evaluate reports the whole set; these few keep the per-epoch MLflow rows readable.
LONG_TAIL_PER_EPOCH = ("macro_ap", "micro_f1", "rare_macro_f1")
PER_HEAD = ("acc", "macro_f1", *LONG_TAIL_PER_EPOCH)
MULTI_LABEL_ONLY = ("samples_f1",)  # each clip's predicted label set against its true one, averaged
# Recorded by the run itself around validation (run.fit), in this order.
RUN_METRICS = ("train/loss", "train/lr", "fusion/num_params", "time/train_s", "time/val_s")


def per_head_keys(head: HeadSpec) -> tuple[str, ...]:
    return (*PER_HEAD, *MULTI_LABEL_ONLY) if head.multi else PER_HEAD


def validation_metric_names(heads: Sequence[HeadSpec], prefix: str = "val") -> list[str]:
    """What ``loop.validate`` returns: the loss, each head's scores and the mean of the heads' macro-F1."""
    return [f"{prefix}/loss", *(f"{prefix}/{head.name}_{key}" for head in heads for key in per_head_keys(head)),
            f"{prefix}/macro_f1"]


def epoch_metric_names(heads: Sequence[HeadSpec]) -> list[str]:
    return [*RUN_METRICS, *validation_metric_names(heads)]


def check_metrics_are_recorded(cfg: DictConfig) -> None:
    """ConfigError naming the first of ``training.monitor`` / ``optimized_metric`` that no epoch records."""
    objectives = objectives_of(cfg.optimized_metric)
    known = epoch_metric_names(heads_from_config(cfg))
    for key, name in [("training.monitor", cfg.training.monitor), *(("optimized_metric", n) for n in objectives)]:
        if str(name) not in known:
            raise ConfigError(f"{key}={name} is not a metric training records each epoch; one of: {', '.join(known)}.")
