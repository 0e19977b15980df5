"""What a student trains on: the labelled clips with the teacher's answers beside their labels, and the kept
unlabelled clips with the teacher's answers alone.

    item["targets"] = {<head>: label, "teacher:<head>": the teacher's logits, "labeled": 1.0}    labelled clip
                      {<head>: placeholder, "teacher:<head>": ..., "labeled": 0.0}              unlabelled clip
A placeholder label (class 0, an all-zero row) is never scored: the loss reads ``labeled`` first (loss.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch.utils.data import ConcatDataset, Dataset

from mmbehave.data.dataset import ClipDataset
from mmbehave.distilling.loss import LABELED_KEY, TEACHER_KEY
from mmbehave.distilling.teacher import TeacherAnswers


class WithTeacher(Dataset):
    """``dataset``'s items with the teacher's logits for each clip, and whether the clip has labels."""

    def __init__(self, dataset: ClipDataset, answers: TeacherAnswers, labeled: bool) -> None:
        self.dataset, self.answers, self.labeled = dataset, answers, np.float32(1.0 if labeled else 0.0)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        teacher = self.answers.row(item["clip_id"])
        item["targets"].update({TEACHER_KEY.format(head): logits for head, logits in teacher.items()})
        item["targets"][LABELED_KEY] = self.labeled
        return item


def placeholder_table(table: pd.DataFrame, heads, classes) -> pd.DataFrame:
    """The pool's table with each head's column set to its first class, which ClipDataset needs to build; the
    values are never used (``labeled`` is 0)."""
    filled = table.copy()
    for head in heads:
        filled[head.column] = classes[head.name][0]
    return filled


def student_training_set(labelled: ClipDataset, answers: TeacherAnswers,
                         pool: ClipDataset | None = None, pool_answers: TeacherAnswers | None = None) -> Dataset:
    parts = [WithTeacher(labelled, answers, labeled=True)]
    if pool is not None and len(pool):
        parts.append(WithTeacher(pool, pool_answers, labeled=False))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)
