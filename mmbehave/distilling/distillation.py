"""What a distillation adds to a training run, in one object the run's builders carry (training/parts.py).

    prepare(settings, prepared)  the teacher's answers for the training clips, and for the unlabelled pool
                                 (decoded, answered, filtered); the teacher is let go after
    training_set(train_set)      the dataset the student's steps read (training_set.py)
    summary()                    what the pool gave, for the run's tags and its log
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from torch.utils.data import Dataset, Subset

from mmbehave.core.errors import ConfigError
from mmbehave.data.dataset import ClipDataset
from mmbehave.distilling.pool import kept_clips
from mmbehave.distilling.settings import DistillSettings
from mmbehave.distilling.teacher import Teacher, TeacherAnswers, teacher_answers
from mmbehave.distilling.training_set import placeholder_table, student_training_set
from mmbehave.predicting.clip_pool import decode_pool, pool_files

log = logging.getLogger(__name__)


@dataclass
class Distillation:
    settings: DistillSettings
    teacher: Teacher
    answers: TeacherAnswers | None = None
    pool: Dataset | None = None
    pool_answers: TeacherAnswers | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def prepare(self, run_settings, prepared) -> None:
        trained = self.teacher.trained
        settings = self.settings
        teacher_view = ClipDataset(prepared.layout, prepared.tables["train"], heads=trained.heads,
                                   classes=trained.classes, modalities=trained.modalities, mel_mean=trained.mel_mean,
                                   mel_std=trained.mel_std, has_audio=prepared.has_audio, has_video=prepared.has_video)
        self.answers = teacher_answers(self.teacher, teacher_view, settings.cache_dir, "train",
                                       settings.teacher_batch_size)
        self.counts = {"labeled_clips": len(teacher_view)}
        if settings.unlabeled:
            self._prepare_pool(run_settings, prepared)

    def _prepare_pool(self, run_settings, prepared) -> None:
        trained, settings = self.teacher.trained, self.settings
        files = pool_files(settings.unlabeled)
        decoded = decode_pool(files, run_settings.data.preprocess, settings.cache_dir,
                              run_settings.hardware.num_workers or 2)
        table = placeholder_table(decoded.table, trained.heads, trained.classes)
        flags = {name: dict(zip(table["clip_id"], table[name] == "True")) for name in ("has_audio", "has_video")}

        def view(modalities, mel_mean, mel_std):
            return ClipDataset(decoded.layout, table, heads=trained.heads, classes=trained.classes,
                               modalities=modalities, mel_mean=mel_mean, mel_std=mel_std,
                               has_audio=flags["has_audio"], has_video=flags["has_video"])

        answers = teacher_answers(self.teacher, view(trained.modalities, trained.mel_mean, trained.mel_std),
                                  settings.cache_dir, "unlabeled", settings.teacher_batch_size)
        probabilities = answers.probabilities(trained.heads)
        kept = kept_clips(probabilities, trained.heads, settings.min_confidence, settings.balance,
                          settings.max_unlabeled)
        student_view = view(run_settings.modalities, prepared.mel_mean, prepared.mel_std)
        self.pool, self.pool_answers = Subset(student_view, kept.tolist()), answers
        self.counts.update(unlabeled_files=len(files), unlabeled_unreadable=decoded.unreadable,
                           unlabeled_kept=len(kept))
        first = trained.heads[0]
        if len(kept) and not first.multi:
            top = probabilities[first.name][kept].argmax(axis=1)
            per_class = {trained.classes[first.name][i]: int(n) for i, n in enumerate(np.bincount(
                top, minlength=len(trained.classes[first.name]))) if n}
        else:
            per_class = {}
        log.info("Unlabelled clips: %d file(s), %d unreadable, %d kept for training (min_confidence %g, balance %s)"
                 "%s", len(files), decoded.unreadable, len(kept), settings.min_confidence, settings.balance,
                 f"; by the teacher's {first.name}: {per_class}" if per_class else "")

    def training_set(self, train_set: ClipDataset) -> Dataset:
        if self.answers is None:
            raise RuntimeError("Distillation.prepare must run before training_set")
        if self.pool is not None and train_set.cached and len(self.pool):
            raise ConfigError("distill.unlabeled with a frozen student encoder whose features are cached: the "
                              "unlabelled clips have none; set training.feature_cache=false.")
        return student_training_set(train_set, self.answers, self.pool, self.pool_answers)
