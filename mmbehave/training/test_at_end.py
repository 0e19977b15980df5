"""``training.test_at_end=true``: when a run finishes, its best checkpoint is evaluated on the test split as
``python -m mmbehave.evaluate`` would (conf/evaluate.yaml's settings, attention figures off), and the ``test/*``
metrics and reports land in the run itself. A cross-validation fold's run is so tested on its held-out groups
(``data.labels_dir``), and a multirun's parent then holds the mean and spread over its runs
(``sweeps.results.fold_summary``)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from mmbehave.core.paths import config_dir

log = logging.getLogger(__name__)


def evaluate_on_test(best: Path, run_dir: Path, tracking_uri: str, device: str) -> dict:
    """The evaluate command's work on ``best`` (its metrics.json contents), written under run_dir/evaluation/test."""
    from mmbehave.analysis.evaluation import run_evaluation

    cfg = OmegaConf.load(config_dir() / "evaluate.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key, None)
    cfg.merge_with({"checkpoint": str(best), "split": "test", "device": device,
                    "output_dir": str(run_dir / "evaluation" / "test"), "attention": {"num_clips": 0},
                    "mlflow": {"tracking_uri": tracking_uri, "log": True}})
    log.info("Testing the best checkpoint on the test split (training.test_at_end=true)")
    return run_evaluation(cfg)
