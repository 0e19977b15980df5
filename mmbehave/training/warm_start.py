"""``training.init_from=<best.pth | models:/name/version>``: a new run starts from an earlier model's weights (the
next round of review -> train), instead of from scratch. Unlike ``resume=`` it is a new run: its own folder,
MLflow run, optimizer and schedule; only the model's weights carry over.

    the earlier model's weights ─► every tensor of the same name and shape (encoders, fusion)
                               └─► each head's output rows, moved by class name to the class's place now
    a class the earlier model did not know keeps the fresh Linear's default initialisation (PyTorch's uniform
    +-1/sqrt(fan_in)), so it starts as uncommitted as every class of a new model;
    a class the earlier model knew but the tables no longer hold is refused (the classes must agree).

The file is read with ``weights_only=True``; nothing but tensors is taken from it. The run is tagged
``init_from``, ``init_from_sha256``, ``review_round`` (the earlier model's round + 1) and ``reviewed_clips`` (the
training and validation rows with a ``reviewed_by`` cell: what the review added).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from mmbehave.core.errors import CheckpointError
from mmbehave.core.redact import redact
from mmbehave.data.metadata import ClassLists

log = logging.getLogger(__name__)
ROUND_KEY = "review_round"
REVIEWED_BY = "reviewed_by"


@dataclass(frozen=True)
class WarmStart:
    source: str
    sha256: str
    review_round: int
    new_classes: dict[str, list[str]]   # head -> classes the earlier model did not know

    def tags(self, reviewed_clips: int) -> dict[str, str]:
        return {"init_from": redact(self.source), "init_from_sha256": self.sha256,
                ROUND_KEY: str(self.review_round), "reviewed_clips": str(reviewed_clips)}


def warm_start(model: nn.Module, source: str, tracking_uri: str, classes: ClassLists) -> WarmStart:
    """Copy the earlier model's weights into ``model`` (built for ``classes``), in place."""
    from mmbehave.checkpoints.files import read_checkpoint
    from mmbehave.checkpoints.sources import checkpoint_path
    from mmbehave.core.digests import file_sha256

    is_uri = "://" in source or source.startswith("models:/") or source.startswith("runs:/")
    path = checkpoint_path(None if is_uri else source, None, tracking_uri, source if is_uri else None,
                           Path(tempfile.mkdtemp(prefix="mmbehave-init-")))
    stored = read_checkpoint(path)
    where = f"training.init_from={redact(source)}"
    old_classes = {head: list(names) for head, names in stored["classes"].items()}
    if list(old_classes) != classes.names():
        raise CheckpointError(f"{where}: its heads are {', '.join(old_classes)}, this run's {', '.join(classes.names())}; "
                              "warm-start a model with the same model.heads.")
    gone = {head: [name for name in names if name not in classes[head]] for head, names in old_classes.items()}
    if any(gone.values()):
        named = "; ".join(f"{head}: {', '.join(names)}" for head, names in gone.items() if names)
        raise CheckpointError(f"{where}: the earlier model knew classes the label tables no longer have ({named}); the "
                              "classes must agree (a new class may be added, none removed). Keep their rows in the tables.")
    merged = merged_state(model.state_dict(), stored["model"], old_classes, classes, where)
    model.load_state_dict(merged)
    new = {head: [name for name in classes[head] if name not in old_classes[head]] for head in old_classes}
    if any(new.values()):
        log.info("init_from: new classes start from a fresh output row: %s",
                 "; ".join(f"{head}: {', '.join(names)}" for head, names in new.items() if names))
    log.info("Warm-started from %s (round %d)", redact(source), int(stored.get(ROUND_KEY, 0)) + 1)
    return WarmStart(source, file_sha256(path)[:12], int(stored.get(ROUND_KEY, 0)) + 1,
                     {head: names for head, names in new.items() if names})


def merged_state(own: dict[str, torch.Tensor], earlier: dict[str, torch.Tensor], old_classes: dict[str, list[str]],
                 classes: ClassLists, where: str) -> dict[str, torch.Tensor]:
    """The earlier tensors where they fit; head rows moved by class name. A missing tensor (an encoder stored by
    reference: training.frozen_in_checkpoints=reference) keeps the one built from the same pretrained source."""
    merged = dict(own)
    for key, tensor in earlier.items():
        if key not in own:
            raise CheckpointError(f"{where}: it has {key}, which this model has not: warm-start from a model of the same "
                                  "architecture (video_encoder, audio_encoder, fusion as that run).")
        head = next((name for name in old_classes if key.startswith(f"heads.{name}.")), None)
        if head is not None and tensor.shape[:1] == (len(old_classes[head]),):
            rows = own[key].clone()
            for index, name in enumerate(old_classes[head]):
                rows[classes[head].index(name)] = tensor[index]
            merged[key] = rows
        elif tensor.shape != own[key].shape:
            raise CheckpointError(f"{where}: {key} is {tuple(tensor.shape)} there, {tuple(own[key].shape)} here: warm-start "
                                  "from a model of the same architecture and sizes as this run's.")
        else:
            merged[key] = tensor
    return merged


def reviewed_clips(metadata_csvs: list[Path]) -> int:
    """Rows a review added or corrected (a ``reviewed_by`` cell) in these label tables."""
    count = 0
    for path in metadata_csvs:
        if path.is_file():
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
            if REVIEWED_BY in table.columns:
                count += int((table[REVIEWED_BY] != "").sum())
    return count
