"""The teacher: which trained model, whether a student may learn from it here, and its answers, computed once.

    teacher=<best.pth | models:/name/version | runs:/id/model> ─► the file, its SHA-256, the model (frozen, eval)
    check_teacher_inputs / check_teacher_classes: heads, preprocessing and classes must be the student's, else one
        line naming the first difference (before the dataset is made, and before any run is opened)
    teacher_answers(clips) ─► logits per head, cached under distill.cache_dir by (teacher file, its precision,
        the clips' input files): every epoch, resumed run and sweep trial after the first reads them from disk

The answers are logits, not probabilities, so a sweep over distill.temperature reuses them too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mmbehave.core.atomic import atomic_path
from mmbehave.core.errors import ConfigError
from mmbehave.core.locks import exclusive
from mmbehave.core.progress import show_progress
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.dataset import ClipDataset
from mmbehave.data.prepared import make_loader, preprocess_values
from mmbehave.domain.heads import HeadSpec
from mmbehave.training.feature_cache import inputs_digest
from mmbehave.training.loop import model_inputs

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    source: str                      # teacher= as given
    path: Path                       # the checkpoint file (downloaded, for an MLflow model)
    sha256: str
    trained: object                  # checkpoints.trained_model.TrainedModel; None once its answers are all cached
    precision: str                   # the plan's line: part of the answers' cache key

    @property
    def run_id(self) -> str:
        return self.trained.mlflow_run_id or ""

    def tags(self) -> dict[str, str]:
        """The student run's MLflow tags that name its teacher."""
        return {"teacher_source": self.source, "teacher_sha256": self.sha256, "teacher_run_id": self.run_id}


def load_teacher(source: str, tracking_uri: str, precision: str, download_to: Path, device: str = "cpu") -> Teacher:
    from mmbehave.checkpoints.loading import ModelSource, load_command_model
    from mmbehave.core.digests import file_sha256

    text = str(source).strip()
    if not text or text == "???":
        raise ConfigError("teacher= is required: a trained model's checkpoints/best.pth, or models:/<name>/<version>.")
    is_uri = text.startswith(("models:/", "runs:/"))
    loaded = load_command_model(ModelSource(None if is_uri else text, None, text if is_uri else None, tracking_uri),
                                device, download_to, precision=precision)
    loaded.trained.model.requires_grad_(False)
    return Teacher(text, loaded.path, file_sha256(loaded.path), loaded.trained, loaded.precision.line())


def check_teacher_inputs(teacher: Teacher, heads: tuple[HeadSpec, ...], preprocess: PreprocessSettings) -> None:
    """ConfigError naming the first head or preprocessing value the student has otherwise than the teacher. Runs
    before the dataset is made: other preprocessing must be refused, not used to remake the dataset's files."""
    trained, where = teacher.trained, f"teacher={teacher.source}"
    mine = [(h.name, h.type) for h in heads]
    theirs = [(h.name, h.type) for h in trained.heads]
    if mine != theirs:
        raise ConfigError(f"{where} has heads {theirs}, this run {mine}: give model/heads= the teacher's heads.")
    student, made = preprocess_values(preprocess), preprocess_values(trained.preprocess)
    for key, value in made.items():
        if student.get(key) != value:
            raise ConfigError(f"{where} was trained on clips made with data.{key}={value}, this run has "
                              f"data.{key}={student.get(key)}: set data.{key}={value} (the teacher's answers are "
                              "only right for inputs made as its own were).")


def check_teacher_classes(teacher: Teacher, heads: tuple[HeadSpec, ...], classes) -> None:
    """ConfigError naming the first head whose class list (names and order) is not the teacher's. ``classes``: the
    student's ClassLists, from the dataset's label tables."""
    trained = teacher.trained
    for head in heads:
        if list(classes[head.name]) != list(trained.classes[head.name]):
            raise ConfigError(f"teacher={teacher.source} knows {head.name} classes {trained.classes[head.name]}, this "
                              f"dataset {classes[head.name]}: distil on the data the teacher was trained on, or train "
                              "a teacher on these classes.")


@dataclass(frozen=True)
class TeacherAnswers:
    """The teacher's logits for some clips: {head: (N, C) float32}, rows in ``clip_ids`` order."""

    clip_ids: list[str]
    logits: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rows", {clip: i for i, clip in enumerate(self.clip_ids)})

    def row(self, clip_id: str) -> dict[str, np.ndarray]:
        index = self._rows[clip_id]
        return {head: values[index] for head, values in self.logits.items()}

    def probabilities(self, heads: tuple[HeadSpec, ...]) -> dict[str, np.ndarray]:
        out = {}
        for head in heads:
            scores = torch.from_numpy(self.logits[head.name])
            out[head.name] = (torch.sigmoid(scores) if head.multi else torch.softmax(scores, dim=1)).numpy()
        return out


def answers_path(teacher: Teacher, dataset: ClipDataset, cache_dir: Path, name: str) -> Path:
    """One file per teacher, precision and set of clip files: re-preprocessed clips or another teacher miss."""
    files = [path for clip in dataset.clip_ids for path in (dataset.layout.video_frames(clip),
                                                            dataset.layout.mel_spectrogram(clip)) if path.exists()]
    key = hashlib.sha256(json.dumps([teacher.sha256, teacher.precision, dataset.clip_ids, inputs_digest(files),
                                     dataset.mel_mean, dataset.mel_std]).encode()).hexdigest()
    return cache_dir / f"{name}-{teacher.sha256[:12]}-{key[:16]}.npz"


def teacher_answers(teacher: Teacher, dataset: ClipDataset, cache_dir: Path, name: str,
                    batch_size: int) -> TeacherAnswers:
    """The teacher's logits for every clip of ``dataset`` (its own mel statistics applied), from the cache when
    they were computed before; computed once otherwise, however many runs ask at the same time."""
    path = answers_path(teacher, dataset, cache_dir, name)
    with exclusive(path, waiting=f"waiting for another run to finish the teacher's answers ({path.name})"):
        if path.is_file():
            log.info("Teacher answers for %d %s clips read from %s", len(dataset), name, path)
            return read_answers(path)
        answers = run_teacher(teacher, dataset, batch_size, name)
        with atomic_path(path) as temp:
            with open(temp, "wb") as handle:  # np.savez on a path would add .npz to the temp name
                np.savez(handle, clip_ids=np.array(answers.clip_ids), **{f"logits_{h}": v
                                                                          for h, v in answers.logits.items()})
        log.info("Teacher answers for %d %s clips written to %s", len(dataset), name, path)
        return answers


def read_answers(path: Path) -> TeacherAnswers:
    with np.load(path, allow_pickle=False) as stored:  # arrays only: a file from elsewhere runs no code
        return TeacherAnswers([str(c) for c in stored["clip_ids"]],
                              {key[len("logits_"):]: stored[key].astype(np.float32)
                               for key in stored.files if key.startswith("logits_")})


@torch.no_grad()
def run_teacher(teacher: Teacher, dataset: ClipDataset, batch_size: int, name: str) -> TeacherAnswers:
    model = teacher.trained.model
    weights = next(iter(model.parameters()), None)  # an ONNX teacher (export format=onnx) has none: the CPU
    device = weights.device if weights is not None else torch.device("cpu")
    model.eval()
    logits: dict[str, list[np.ndarray]] = {head.name: [] for head in teacher.trained.heads}
    loader = make_loader(dataset, batch_size)
    for batch in tqdm(loader, desc=f"teacher on {name} clips", leave=False, disable=not show_progress()):
        output = model(**model_inputs(batch, device))
        for head in logits:
            logits[head].append(output.logits[head].float().numpy())
    return TeacherAnswers(list(dataset.clip_ids), {head: np.concatenate(values) for head, values in logits.items()})
