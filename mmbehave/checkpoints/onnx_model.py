"""An ONNX export (``onnx_graph``) back as a ``TrainedModel``, so that evaluate and predict take ``checkpoint=
model.onnx`` as they take a .pth: the settings from the file's metadata_props (JSON, and the training config as
YAML text: nothing in the file runs), the model an ``OnnxClassifier`` around an onnxruntime session.

    model.onnx ─► InferenceSession (CPUExecutionProvider, torch's thread count) ─► metadata_props mmbehave.*
        ─► checked as a checkpoint's keys are ─► TrainedModel(model=OnnxClassifier, runtime="onnxruntime", ...)

``OnnxClassifier`` answers as ``MultiModalClassifier`` does (``forward`` with the present flags, ``encode`` then
``classify_tokens``), tensors in and out, so the commands' code paths are the torch model's. The graph holds
encoders and fusion in one piece: ``encode`` hands the inputs on as they are and ``classify_tokens`` runs the
graph, a modality left out (evaluate's "without audio") fed as zeros marked absent, which the fusion drops.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from mmbehave.checkpoints.onnx_graph import FORMAT_VERSION, INSTALL_HINT, PREFIX, REQUIRED_KEYS
from mmbehave.core.errors import CheckpointError, UserError
from mmbehave.models.classifier import MODALITIES, ClassifierOutput


def require_onnxruntime():
    """The onnxruntime module, or a one-line UserError saying how to install it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise UserError(f"{INSTALL_HINT} (onnxruntime is not installed here).") from error
    return onnxruntime


def cpu_session(path: Path):
    """An onnxruntime session on the CPU with torch's intra-op thread count, so that ``latency.threads`` and
    ``OMP_NUM_THREADS`` mean the same for an ONNX model as for a torch one. CheckpointError (one line) for a file
    onnxruntime cannot read."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # onnxruntime's warnings about its own graph rewrites would reach every user
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail / InvalidProtobuf / ... kinds
        reason = " ".join(str(error).split())[:200]
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(error).__name__}: {reason}).") from error


class OnnxClassifier(nn.Module):
    """An onnxruntime session in the shape of ``MultiModalClassifier``. It has no parameters (the weights are in the
    session), hence ``device``; ``part_precision`` stays empty: the graph runs in the precision it was exported in."""

    def __init__(self, session, inputs: list[str], heads: list[str], modalities: tuple[str, ...]):
        super().__init__()
        self.session, self.inputs, self.head_names = session, list(inputs), list(heads)
        self.device = torch.device("cpu")
        self.part_precision: dict[str, str] = {}
        self._modalities = tuple(m for m in MODALITIES if m in modalities)
        # Per-sample shape of each input (everything but the dynamic batch): what an absent modality is filled with.
        self.sample_shapes = {i.name: tuple(int(d) for d in i.shape[1:]) for i in session.get_inputs()}

    @property
    def modalities(self) -> str:
        return "+".join(self._modalities)

    def encode(self, video: torch.Tensor | None = None, audio: torch.Tensor | None = None,
               present: dict[str, torch.Tensor] | None = None, tokens=None) -> dict[str, torch.Tensor]:
        """The model's inputs, as its "tokens": the encoders are inside the graph (module docstring)."""
        given = {m: x for m, x in (("video", video), ("audio", audio)) if x is not None and m in self._modalities}
        if not given:
            raise ValueError(f"this {self.modalities} model got no input for any of its modalities")
        return given

    def classify_tokens(self, tokens: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None,
                        return_attention: bool = False) -> ClassifierOutput:
        present = present or {}
        batch = next(iter(tokens.values())).shape[0]
        feed = {}
        for modality in self._modalities:
            x = tokens.get(modality)
            if x is None:  # absent from the whole batch: zeros the masks drop
                feed[modality] = np.zeros((batch, *self.sample_shapes[modality]), dtype=np.float32)
                feed[f"{modality}_present"] = np.zeros(batch, dtype=bool)
                continue
            flags = present.get(modality)
            feed[modality] = x.detach().cpu().float().numpy()
            feed[f"{modality}_present"] = (np.ones(batch, dtype=bool) if flags is None
                                           else flags.detach().cpu().numpy().astype(bool))
        outputs = self.session.run(self.head_names, {name: feed[name] for name in self.inputs})
        return ClassifierOutput(logits={head: torch.from_numpy(np.ascontiguousarray(value))
                                        for head, value in zip(self.head_names, outputs)},
                                fused=torch.empty(batch, 0), attentions=None)

    def forward(self, video: torch.Tensor | None = None, audio: torch.Tensor | None = None,
                video_present: torch.Tensor | None = None, audio_present: torch.Tensor | None = None,
                **ignored) -> ClassifierOutput:
        """As ``MultiModalClassifier.forward``: a missing flag means all present, a missing modality absent for all.
        ``return_attention`` and cached tokens are ignored: the graph returns logits only."""
        flags = {"video": video_present, "audio": audio_present}
        tokens = self.encode(video, audio)
        return self.classify_tokens(tokens, {m: f for m, f in flags.items() if f is not None and m in tokens})


def read_metadata(path: Path, session) -> dict:
    """The file's mmbehave.* metadata, JSON-decoded; CheckpointError (one line) for a file mmbehave did not write."""
    stored = session.get_modelmeta().custom_metadata_map
    missing = [key for key in REQUIRED_KEYS if PREFIX + key not in stored]
    if missing:
        raise CheckpointError(f"{path}: an ONNX model without mmbehave's metadata (no {PREFIX}{missing[0]}), so its "
                              "classes and preprocessing are unknown; pass a model.onnx written by python -m "
                              "mmbehave.export format=onnx.")
    try:
        values = {key[len(PREFIX):]: json.loads(value) for key, value in stored.items() if key.startswith(PREFIX)}
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: its {PREFIX}* metadata is not JSON ({error}).") from error
    if values["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: ONNX metadata version {values['format_version']}; this mmbehave reads "
                              f"version {FORMAT_VERSION}. Export the model again with this version.")
    return values


def load_onnx_model(path: Path, device: str | torch.device = "cpu"):
    """``trained_model.load_trained_model`` for a .onnx file: a TrainedModel whose model is an OnnxClassifier."""
    from mmbehave.checkpoints.trained_model import TrainedModel
    from mmbehave.core.errors import ConfigError
    from mmbehave.data.clip_inputs import PreprocessSettings
    from mmbehave.data.metadata import ClassLists
    from mmbehave.domain.heads import heads_from_config

    if torch.device(device).type != "cpu":
        raise CheckpointError(f"{path}: ONNX models run on the CPU here (onnxruntime's CPUExecutionProvider); use "
                              "device=cpu.")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file.")
    session = cpu_session(path)
    meta = read_metadata(path, session)
    try:
        config = OmegaConf.create(meta["config"])
        heads = heads_from_config(config)
        classes = ClassLists.from_checkpoint(meta["classes"], heads)
        stats = meta["data_stats"]
        mel_mean, mel_std = float(stats["mel_mean"]), float(stats["mel_std"])
        modalities = tuple(meta["modalities"])
    except (ConfigError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its mmbehave metadata is incomplete ({type(error).__name__}: {error}).") from error
    outputs = [head.name for head in heads]
    graph_inputs = [i.name for i in session.get_inputs()]
    graph_outputs = [o.name for o in session.get_outputs()]
    if meta["outputs"] != outputs or not set(outputs) <= set(graph_outputs) or meta["inputs"] != graph_inputs:
        raise CheckpointError(f"{path}: its graph's inputs {graph_inputs} and outputs {graph_outputs} are not the "
                              f"ones its metadata names ({meta['inputs']}, {outputs}).")
    checkpoint = {key: meta.get(key) for key in ("classes", "data_stats", "preprocess", "modalities", "config",
                                                 "mlflow_run_id", "epoch", "train_class_counts", "thresholds",
                                                 "source_checkpoint", "source_sha256", "quantization")}
    checkpoint["epoch"] = checkpoint["epoch"] or 0
    return TrainedModel(
        model=OnnxClassifier(session, graph_inputs, outputs, modalities).eval(), classes=classes,
        preprocess=PreprocessSettings.from_config(meta["preprocess"]), mel_mean=mel_mean, mel_std=mel_std,
        modalities=modalities, config=config, mlflow_run_id=meta.get("mlflow_run_id"), path=path,
        quantization=meta.get("quantization"), checkpoint=checkpoint, heads=heads, runtime="onnxruntime")
