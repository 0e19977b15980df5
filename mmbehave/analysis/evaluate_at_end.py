"""``training.test_at_end=true``: when a run finishes (not when it is stopped or pruned), its best checkpoint
is evaluated on the test split as ``python -m mmbehave.evaluate run_id=<the run>`` would (conf/evaluate.yaml's
settings, attention figures off): reports in ``<run folder>/evaluation/test/``, ``test/*`` metrics in the run.
A cross-validation fold's run is so tested on its held-out groups (``data.labels_dir``), and a multirun's
parent then holds the mean and spread over its runs (``sweeps.over_runs``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from mmbehave.core.paths import config_dir
from mmbehave.training.hooks import RunHooks

log = logging.getLogger(__name__)


def evaluate_at_end(cfg: DictConfig) -> EvaluateAtEnd | None:
    """The hook, when the config asks for it."""
    if not cfg.training.get("test_at_end"):
        return None
    return EvaluateAtEnd(Path(str(cfg.paths.output_dir)), cfg.mlflow.get("tracking_uri"), str(cfg.hardware.device))


class EvaluateAtEnd(RunHooks):
    def __init__(self, output_dir: Path, tracking_uri: str | None, device: str) -> None:
        self.output_dir, self.tracking_uri, self.device = output_dir, tracking_uri, device
        self.run_id: str | None = None

    def run_started(self, run_id: str) -> None:
        self.run_id = run_id

    def run_finished(self, value: float | list[float], tag_run: Callable[[dict[str, Any]], None]) -> None:
        if self.run_id is None or int(os.environ.get("RANK", "0")) != 0:  # one process of a DDP run tests
            return
        from mmbehave.analysis.evaluation import run_evaluation

        cfg = OmegaConf.load(config_dir() / "evaluate.yaml")
        for key in ("defaults", "hydra"):
            cfg.pop(key, None)
        cfg.merge_with({"run_id": self.run_id, "split": "test", "device": self.device,
                        "output_dir": str(self.output_dir / "evaluation" / "test"), "attention": {"num_clips": 0},
                        "mlflow": {"tracking_uri": self.tracking_uri, "log": True}})
        log.info("Testing the best checkpoint on the test split (training.test_at_end=true)")
        run_evaluation(cfg)
