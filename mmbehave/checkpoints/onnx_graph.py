"""A trained model as one ONNX file (``python -m mmbehave.export format=onnx``): the fp32 graph with a dynamic batch
dimension, and in its ``metadata_props`` everything inference needs, as JSON, so that the .onnx file alone is a
whole model that onnxruntime runs on x86 and ARM CPUs without torch, and that reading it runs no code.

    MultiModalClassifier ─► GraphModel (inputs per modality the model has, video first):
        video (B, 3, T, H, W) float in [0, 1], video_present (B,) bool,
        audio (B, 1, n_mels, time) standardised log-mel, audio_present (B,) bool
      ─► each encoder over every sample ─► classify_tokens(tokens, present) ─► one logits output per head
    metadata_props: mmbehave.<key> = JSON (``METADATA_KEYS``), read back by ``onnx_model.load_onnx_model``

Why every sample goes through every encoder: the torch model encodes only the samples that have a modality
(``index_select`` of the present rows, a shape that depends on the data and that an exported graph cannot have).
Encoding the placeholder too changes no answer: the fusion drops an absent sample's tokens itself, through the
present masks (``mbt.present_masks``, ``masked_mean``'s ``torch.where``; the concat fusion's ``torch.where``), and
in eval mode BatchNorm uses its running statistics, so the placeholder shifts nothing. Tests compare the two.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from mmbehave.core.digests import file_sha256
from mmbehave.core.errors import CheckpointError, UserError

FORMAT_VERSION = 1
PREFIX = "mmbehave."
# What a training checkpoint holds that inference needs (checkpoints.export.EXPORTED_KEYS), and what only an ONNX
# file needs said: its inputs and outputs in order, the heads' config, where it came from, how it was quantised.
METADATA_KEYS = ("format_version", "classes", "data_stats", "preprocess", "modalities", "config", "mlflow_run_id",
                 "epoch", "train_class_counts", "thresholds", "heads", "inputs", "outputs", "source_checkpoint",
                 "source_sha256", "quantization")
REQUIRED_KEYS = ("format_version", "classes", "data_stats", "preprocess", "modalities", "config", "inputs", "outputs")
INSTALL_HINT = 'the ONNX format needs the onnx extra: pip install "mmbehave[onnx]"'
# Protobuf cannot hold more in one file; a bigger model would need its weights in a second file beside it.
MAX_ONNX_BYTES = 2**31 - 2**26


@contextlib.contextmanager
def quiet_onnx_tools() -> Iterator[None]:
    """Held while torch's exporter and onnxruntime's quantiser run: their notes (hundreds of INFO lines, one per
    rewrite rule and skipped constant fold, and a root-logger warning per normalisation weight not quantised per
    channel) are nothing a user can act on, and would bury the export's own lines. Their errors still show."""
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "onnxruntime", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    root = logging.getLogger()

    def keep(record: logging.LogRecord) -> bool:  # onnxruntime.quantization logs through logging.warning()
        return record.name != "root" or record.levelno >= logging.ERROR

    for logger in loggers:
        logger.setLevel(logging.ERROR)
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def input_names(modalities: tuple[str, ...]) -> list[str]:
    """The graph's inputs in order: ``<modality>``, ``<modality>_present`` for each modality, video first."""
    return [name for m in ("video", "audio") if m in modalities for name in (m, f"{m}_present")]


class GraphModel(nn.Module):
    """What is exported: the classifier with one keyword input per graph input and a tuple of logits out (one per
    head, in the model's head order), every encoder run over the whole batch (the module docstring says why)."""

    def __init__(self, model: nn.Module, modalities: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.modalities = tuple(m for m in ("video", "audio") if m in modalities)

    def forward(self, video=None, video_present=None, audio=None, audio_present=None) -> tuple[torch.Tensor, ...]:
        given = {"video": (video, video_present), "audio": (audio, audio_present)}
        tokens = {m: getattr(self.model, f"{m}_encoder")(given[m][0]) for m in self.modalities}
        present = {m: given[m][1] for m in self.modalities}
        return tuple(self.model.classify_tokens(tokens, present).logits.values())


def example_batch(preprocess, modalities: tuple[str, ...], batch: int = 2) -> dict[str, torch.Tensor]:
    """Inputs in the shapes ``preprocess`` gives, one sample lacking each modality: what the graph is traced on
    (values do not matter to the graph; a mixed present flag keeps the masks from being folded into constants)."""
    from mmbehave.models.precision_plan import example_inputs

    generator = torch.Generator().manual_seed(0)
    inputs = {}
    for modality, one in example_inputs(preprocess, modalities).items():
        inputs[modality] = torch.rand((batch, *one.shape[1:]), generator=generator)
        inputs[f"{modality}_present"] = torch.arange(batch) != (1 if modality == "audio" else 0)
    return {name: inputs[name] for name in input_names(modalities)}


def json_metadata(trained) -> dict[str, str]:
    """``metadata_props`` of the file: ``mmbehave.<key>`` = the JSON of each ``METADATA_KEYS`` value (the source
    checkpoint's SHA-256 ties the export to the training file it came from)."""
    checkpoint = trained.checkpoint
    values = {
        "format_version": FORMAT_VERSION,
        "classes": trained.classes.to_dict(),
        "data_stats": {"mel_mean": trained.mel_mean, "mel_std": trained.mel_std},
        "preprocess": checkpoint["preprocess"],
        "modalities": list(trained.modalities),
        "config": OmegaConf.to_yaml(trained.config),  # YAML text, as a checkpoint keeps it
        "mlflow_run_id": trained.mlflow_run_id,
        "epoch": checkpoint.get("epoch"),
        "train_class_counts": checkpoint.get("train_class_counts"),
        "thresholds": checkpoint.get("thresholds"),
        "heads": OmegaConf.to_container(trained.config.model.heads, resolve=True),
        "inputs": input_names(trained.modalities),
        "outputs": [head.name for head in trained.heads],
        "source_checkpoint": str(trained.path),
        "source_sha256": file_sha256(trained.path),
        "quantization": None,  # fp32; onnx_int8 says how the int8 file was made
    }
    try:
        return {PREFIX + key: json.dumps(values[key], allow_nan=False) for key in METADATA_KEYS}
    except (TypeError, ValueError) as error:  # a value only a newer checkpoint writer could have made
        raise CheckpointError(f"{trained.path}: its inference settings cannot be written as JSON ({error}).") from error


def check_exportable(trained) -> None:
    """CheckpointError unless the model's graph can be one ONNX file: an fp32 model (a torch int8 export cannot be
    exported again), names that do not collide, and weights that fit in one protobuf."""
    if trained.quantization:
        raise CheckpointError(f"{trained.path} is already an int8 export; pass the training checkpoint it came from.")
    clash = set(input_names(trained.modalities)) & {head.name for head in trained.heads}
    if clash:
        raise CheckpointError(f"{trained.path}: head {sorted(clash)[0]} has the name of an ONNX input; ONNX outputs are "
                              "named by the heads, so rename that head to export it.")
    size = sum(t.numel() * t.element_size() for t in [*trained.model.parameters(), *trained.model.buffers()])
    if size > MAX_ONNX_BYTES:
        raise CheckpointError(f"{trained.path}: {size / 2**30:.1f} GiB of weights; one ONNX file holds at most 2 GiB, "
                              "so this model can be exported as .pth only (format=pth).")


def write_onnx_graph(trained, path: Path, metadata: dict[str, str]) -> None:
    """Export ``trained.model`` (fp32, eval mode, on the CPU) to ``path`` with ``metadata`` (``json_metadata``).
    ``path`` is written as it is: the caller makes it a temp file and renames it once the graph is checked."""
    import warnings

    check_exportable(trained)
    try:  # torch's exporter imports them only once it has traced the model, seconds in
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise UserError(f"{INSTALL_HINT} ({error.name} is not installed here).") from error
    model = trained.model.cpu().eval()
    inputs = example_batch(trained.preprocess, trained.modalities)
    batch = torch.export.Dim("batch", min=1, max=2**16)
    with warnings.catch_warnings(), torch.no_grad(), quiet_onnx_tools():
        warnings.simplefilter("ignore")  # the exporter's notes on torch internals, nothing a user can act on
        program = torch.onnx.export(GraphModel(model, trained.modalities), (), kwargs=inputs,
                                    input_names=list(inputs), output_names=[head.name for head in trained.heads],
                                    dynamic_shapes={name: {0: batch} for name in inputs}, dynamo=True,
                                    external_data=False, verbose=False)
    program.model.metadata_props.update(metadata)
    program.save(str(path), external_data=False)


def set_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Replace the mmbehave entries of ``path``'s metadata_props (onnxruntime's quantiser keeps none of them)."""
    import onnx

    model = onnx.load(str(path))
    kept = [entry for entry in model.metadata_props if not entry.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def probabilities_diff(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], heads) -> dict[str, float]:
    """{head: max |p_expected - p_got|} over the probabilities (softmax, or sigmoid for a multi head)."""
    from mmbehave.metrics.epoch_scores import probabilities

    diffs = {}
    for head in heads:
        difference = abs(probabilities(head, expected[head.name]) - probabilities(head, got[head.name]))
        diffs[head.name] = float(difference.max()) if difference.size else 0.0
    return diffs


def check_agrees(trained, session_model, batch: dict[str, torch.Tensor], atol: float, path: Path) -> dict[str, float]:
    """{head: max probability difference} between the torch model and ``session_model`` (an ``OnnxClassifier`` of
    the new file) on ``batch`` (model inputs with their present flags); CheckpointError naming the worst head when
    one differs by more than ``atol``, so that an export that answers differently is never kept."""
    with torch.no_grad():
        expected = trained.model(**batch).logits
        got = session_model(**batch).logits
    diffs = probabilities_diff(expected, got, trained.heads)
    worst = max(diffs, key=diffs.get)
    if not math.isfinite(diffs[worst]) or diffs[worst] > atol:
        raise CheckpointError(f"{path.name}: onnxruntime's {worst} probabilities differ from torch's by up to "
                              f"{diffs[worst]:.3g} (> onnx.atol={atol:g}) on {len(next(iter(batch.values())))} clips; "
                              "nothing was written. Raise onnx.atol= to accept it, or export format=pth.")
    return diffs
