"""The one load sequence of evaluate, export and predict: which file (``checkpoint=`` | ``run_id=`` | ``model=``),
then the model from it.

    ModelSource (checkpoint= | run_id= | model=, read once) ─► sources.checkpoint_path ─► [before_loading(path)]
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
class ModelSource:
    """Which model a command loads: the keys every command that loads one has, read once."""

    checkpoint: str | None
    run_id: str | None
    model_uri: str | None
    tracking_uri: str

    @classmethod
    def from_config(cls, cfg) -> ModelSource:
        def text(key: str) -> str | None:
            value = cfg.get(key)
            return None if value is None or str(value).strip() == "" else str(value)

        return cls(text("checkpoint"), text("run_id"), text("model_uri"), resolve_tracking_uri(cfg.mlflow.tracking_uri))


@dataclass(frozen=True)
class CommandModel:
    path: Path              # the checkpoint file (downloaded, for an MLflow model)
    tracking_uri: str       # the MLflow store the model's run is in (results are logged to it)
    trained: TrainedModel


def load_command_model(source: ModelSource, device: str, download_to: Path | None,
                       before_loading: Callable[[Path], None] | None = None) -> CommandModel:
    tracking_uri = source.tracking_uri
    path = checkpoint_path(source.checkpoint, source.run_id, tracking_uri, source.model_uri, download_to)
    if before_loading is not None:
        before_loading(path)
    return CommandModel(path, tracking_uri, load_trained_model(path, device))
