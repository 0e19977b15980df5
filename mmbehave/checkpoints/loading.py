"""The one load sequence of evaluate, export and predict: which file (``checkpoint=`` | ``run_id=`` | ``model=``),
then the model from it.

    cfg.checkpoint / cfg.run_id / cfg.model_uri ─► sources.checkpoint_path ─► [before_loading(path)]
        ─► trained_model.load_trained_model(path, device) ─► CommandModel(path, tracking_uri, trained)

``before_loading`` runs once the file is known and before the (seconds-long) rebuild: predict checks there that
its ``output=`` replaces none of its inputs, the checkpoint included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmbehave.checkpoints.sources import checkpoint_path
from mmbehave.checkpoints.trained_model import TrainedModel, load_trained_model
from mmbehave.tracking.store import resolve_tracking_uri


@dataclass(frozen=True)
class CommandModel:
    path: Path              # the checkpoint file (downloaded, for an MLflow model)
    tracking_uri: str       # the MLflow store the model's run is in (results are logged to it)
    trained: TrainedModel


def load_command_model(cfg, device: str, download_to: Path | None,
                       before_loading: Callable[[Path], None] | None = None) -> CommandModel:
    """``cfg``: a command config with checkpoint, run_id, model_uri and mlflow.tracking_uri."""
    tracking_uri = resolve_tracking_uri(cfg.mlflow.tracking_uri)
    path = checkpoint_path(cfg.checkpoint, cfg.run_id, tracking_uri, cfg.get("model_uri"), download_to)
    if before_loading is not None:
        before_loading(path)
    return CommandModel(path, tracking_uri, load_trained_model(path, device))
