"""The one load sequence of evaluate, export and predict: which file (``checkpoint=`` | ``run_id=`` | ``model=``),
then the model from it.

    ModelSource (checkpoint= | run_id= | model=, read once) ─► sources.checkpoint_path ─► [before_loading(path)]
        ─► trained_model.load_trained_model(path, device) ─► each part's precision (``precision=``, planned as
        training plans it: models.precision_plan; an ONNX export: as exported) ─► CommandModel(path,
        tracking_uri, trained, precision)

``before_loading`` runs once the file is known and before the (seconds-long) rebuild: predict checks there that
its ``output=`` replaces none of its inputs, the checkpoint included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from mmbehave.checkpoints.sources import checkpoint_path
from mmbehave.checkpoints.trained_model import TrainedModel, load_trained_model
from mmbehave.models.precision_plan import PrecisionPlan, plan_and_apply
from mmbehave.tracking.store import resolve_tracking_uri

log = logging.getLogger(__name__)


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
    precision: PrecisionPlan  # what each part runs in (int8 exports: fp32, their quantised layers take no bf16)


def load_command_model(source: ModelSource, device: str, download_to: Path | None,
                       before_loading: Callable[[Path], None] | None = None, precision: str = "fp32") -> CommandModel:
    tracking_uri = source.tracking_uri
    path = checkpoint_path(source.checkpoint, source.run_id, tracking_uri, source.model_uri, download_to)
    if before_loading is not None:
        before_loading(path)
    trained = load_trained_model(path, device)
    if trained.runtime != "torch":  # an ONNX graph runs in the precision it was exported in: nothing to plan
        plan = PrecisionPlan("fp32", {"onnx_graph": "int8" if trained.quantization else "fp32"},
                             {"onnx_graph": "as exported"}, "onnxruntime CPUExecutionProvider")
    else:
        requested = "fp32" if trained.quantization else precision
        plan = plan_and_apply(trained.model, requested, torch.device(device), trained.preprocess, trained.modalities)
    log.info("%s", plan.line())
    return CommandModel(path, tracking_uri, trained, plan)
