"""A trained model back from its file, ready for evaluation, prediction or export.

    a checkpoint file (``checkpoints.sources``) ─► read_checkpoint (weights_only=True; keys and types checked)
                                                      │ config YAML ─► only model components? ─► build(model,
                                                      │                pretrained off) ─► load_state_dict
                                                      ▼
    TrainedModel(model in eval mode, classes, preprocess settings, mel mean / std, modalities, MLflow run id)

Two kinds of file load here, both plain dicts of tensors and strings (never a pickled module):
    a training checkpoint (``mmbehave.training.checkpoint``: ``model`` is the fp32 state dict), and
    an export from ``mmbehave.export`` (``model`` is the state dict, ``quantization`` says how it was
    made: the fp32 model is rebuilt from the config, quantised the same way, then the int8 state is loaded).
A third, an ONNX export (``export format=onnx``: a graph, its settings as JSON metadata), is handed to
``onnx_model.load_onnx_model`` and comes back as the same TrainedModel, run by onnxruntime.
The model is rebuilt with pretrained loading switched off: every weight comes from the file, so loading
never touches the network or a weights cache. The one exception is a frozen encoder the file names instead of
holding (``frozen_weights``: ``mmbehave.checkpoints.frozen_weights``): it loads from the local source its config
names, with the hubs offline, and must match the digest stored beside it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from mmbehave.checkpoints.files import MODEL_KEYS, read_checkpoint
from mmbehave.checkpoints.frozen_weights import (
    check_same_weights,
    keep_pretrained_loading,
    load_named_state,
    named_encoders,
    not_loadable,
)
from mmbehave.core.errors import CheckpointError, ConfigError, UserError
from mmbehave.core.instantiate import build
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.metadata import ClassLists
from mmbehave.domain.heads import HeadSpec, heads_from_config
from mmbehave.models.components import ENV_VAR, foreign_targets, malformed_keys
from mmbehave.models.pretrained import OFFLINE_VARIABLES

VIDEOMAE_TARGET = "mmbehave.models.video_encoders.build_videomae_encoder"
CNN3D_TARGET = "mmbehave.models.cnn3d.CNN3DEncoder"
PRETRAINED_BUILDERS = (VIDEOMAE_TARGET, "mmbehave.models.audio_encoders.build_resnet18_audio_encoder")
# What mmbehave.export quantises: the Linear layers (attention projections, MLPs, heads), weights to int8,
# activations quantised on the fly per batch. Convolutions stay fp32 (dynamic quantisation has no conv kernel).
DYNAMIC_INT8 = {"method": "dynamic", "dtype": "qint8", "modules": ["Linear"]}


@dataclass
class TrainedModel:
    model: nn.Module                 # in eval mode, on `device`
    classes: ClassLists
    preprocess: PreprocessSettings   # how raw clips were turned into the model's inputs
    mel_mean: float                  # log-mel standardisation measured on the training clips
    mel_std: float
    modalities: tuple[str, ...]      # ("video", "audio"), or one of them for an ablated model
    config: DictConfig               # the resolved training config
    mlflow_run_id: str | None        # the training run (evaluation results are logged to it)
    path: Path
    quantization: dict | None        # None: fp32; else how the int8 weights were made (DYNAMIC_INT8)
    checkpoint: dict                 # the raw file contents (metadata for exports)
    heads: tuple[HeadSpec, ...] = ()  # model.heads of the training config
    runtime: str = "torch"           # "onnxruntime": an ONNX export, `model` an onnx_model.OnnxClassifier (CPU only)

    @property
    def train_counts(self) -> dict[str, list[int]] | None:
        """{head: training clips per class}, which split classes into frequent and rare; None for a checkpoint
        written before training recorded them, or whose counts do not fit its class lists."""
        counts = self.checkpoint.get("train_class_counts")
        sizes = self.classes.sizes()
        if not isinstance(counts, dict) or any(len(counts.get(head) or ()) != size for head, size in sizes.items()):
            return None
        return {head: [int(n) for n in counts[head]] for head in sizes}

    @property
    def thresholds(self) -> dict[str, list[float]]:
        """{multi head: per-class probability thresholds chosen on the validation split}; 0.5 where the
        checkpoint has none (or they do not fit the class list)."""
        stored = self.checkpoint.get("thresholds") or {}
        chosen = {}
        for head in self.heads:
            if head.multi:
                values = stored.get(head.name)
                size = len(self.classes[head.name])
                chosen[head.name] = ([float(v) for v in values] if isinstance(values, list) and len(values) == size
                                     else [0.5] * size)
        return chosen


def model_config_for_loading(config: DictConfig, state: dict) -> DictConfig:
    """The training run's ``model`` config, changed so that building it loads no pretrained weights.

    Every node that could load weights (any ``pretrained`` key, and every builder that loads some, wherever
    it sits in the tree) is switched off: the weights all come from the checkpoint. A run whose VideoMAE
    weights were missing trained the cnn3d stand-in (``on_load_failure=fallback``): its state dict has no
    VideoMAE keys, so that encoder is rebuilt as the cnn3d it really was.
    """
    model_cfg = OmegaConf.create(OmegaConf.to_container(config.model, resolve=True))
    switch_off_pretrained(model_cfg)
    video = model_cfg.get("video_encoder")
    if video is not None and video.get("_target_") == VIDEOMAE_TARGET and config.video_encoder.get("pretrained"):
        has_videomae = any(key.startswith("video_encoder.backbone.") for key in state)
        if not has_videomae and any(key.startswith("video_encoder.") for key in state):
            model_cfg.video_encoder = OmegaConf.create(
                {"_target_": CNN3D_TARGET, "feature_dim": int(video.get("fallback_feature_dim", 768)),
                 "input_norm": str(video.get("input_norm", "fixed"))})
    return model_cfg


def switch_off_pretrained(node) -> None:
    """``pretrained: false`` on every config node that has the key or targets a builder that loads weights."""
    if isinstance(node, DictConfig):
        if "pretrained" in node or node.get("_target_") in PRETRAINED_BUILDERS:
            node.pretrained = False
        for key in node:
            switch_off_pretrained(node[key])
    elif isinstance(node, ListConfig):
        for item in node:
            switch_off_pretrained(item)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Hugging Face and torch hub loads fail at once inside the block (belt and braces: nothing built from a
    checkpoint should try, see ``switch_off_pretrained``)."""
    saved = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
    os.environ.update({name: "1" for name in OFFLINE_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_buildable(path: Path, model_cfg: DictConfig) -> None:
    """CheckpointError (one line) unless every ``_target_`` is a model component and no special key is malformed:
    a checkpoint is data, and its config may only rebuild model components, never another callable."""
    problems = malformed_keys(model_cfg)
    if problems:
        raise CheckpointError(f"{path}: its model config is malformed ({problems[0]}); refusing to build anything "
                              "from this file.")
    foreign = foreign_targets(model_cfg)
    if foreign:
        key, target = foreign[0]
        raise CheckpointError(f"{path}: {key}={target} is not a model component; refusing to build anything from "
                              f"this file. Checkpoints rebuild only mmbehave's encoders, fusions and classifier, or "
                              f"classes you list in ${ENV_VAR}.")


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (torch.ao; CPU only). Returns a new module."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao announces its move to torchao on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model.cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def load_trained_model(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild the model in ``path`` (a training checkpoint or an mmbehave.export file), in eval mode. A ``.onnx``
    file (``export format=onnx``) is read by ``onnx_model.load_onnx_model`` instead: it is no torch file."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from mmbehave.checkpoints.onnx_model import load_onnx_model

        return load_onnx_model(path, device)
    checkpoint = read_checkpoint(path, MODEL_KEYS)
    named = named_encoders(checkpoint, str(path))
    try:
        config = OmegaConf.create(checkpoint["config"])
        model_cfg = model_config_for_loading(config, checkpoint["model"])
    except Exception as error:  # YAML that is not a mapping, or no model section
        raise CheckpointError(f"{path}: its config is not an mmbehave training config with a model section "
                              f"({type(error).__name__}).") from error
    check_buildable(path, model_cfg)
    keep_pretrained_loading(model_cfg, named, str(path))  # frozen encoders the file names, from local files only
    if config.model.get("heads") is None:
        raise CheckpointError(f"{path} was written by an mmbehave from before configurable heads (its config has no "
                              "model.heads); train the model again with this version (python -m mmbehave.train ...).")
    try:
        heads = heads_from_config(config)
        classes = ClassLists.from_checkpoint(checkpoint["classes"], heads)
    except (ConfigError, KeyError) as error:
        raise CheckpointError(f"{path}: its heads and class lists do not match ({error}).") from error
    try:
        with hub_offline():
            model = build(model_cfg, num_classes=classes.sizes())
    except (UserError, ImportError, TypeError, ValueError, AttributeError, InstantiationException) as error:
        reason = " ".join(str(error).split())[:300]
        if named:
            raise not_loadable(str(path), named, model_cfg, reason) from error
        raise CheckpointError(f"{path}: its model config cannot be built ({type(error).__name__}: {reason}).") from error
    check_same_weights(model, named, model_cfg, str(path))
    quantization = checkpoint.get("quantization")
    if quantization is not None:
        if quantization != DYNAMIC_INT8:
            raise CheckpointError(f"{path}: unknown quantization {quantization}; this mmbehave reads {DYNAMIC_INT8}.")
        if torch.device(device).type != "cpu":
            raise CheckpointError(f"{path}: int8 models run on the CPU only; use device=cpu.")
        model = quantize_dynamic_int8(model)
    load_named_state(model, checkpoint["model"], named, str(path))
    stats = checkpoint["data_stats"]
    return TrainedModel(
        model=model.to(device).eval(), classes=classes, preprocess=PreprocessSettings.from_config(checkpoint["preprocess"]),
        mel_mean=float(stats["mel_mean"]), mel_std=float(stats["mel_std"]),
        modalities=tuple(checkpoint.get("modalities") or model.modalities.split("+")), config=config,
        mlflow_run_id=checkpoint.get("mlflow_run_id"), path=path, quantization=quantization, checkpoint=checkpoint,
        heads=heads,
    )
