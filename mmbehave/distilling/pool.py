"""Which of the clips nobody labelled a student trains on (``distill.unlabeled``).

    the pool, decoded once (predicting/clip_pool.py) ─► the teacher's answers for them (teacher.teacher_answers, cached)
      ─► kept: every single head's top probability >= distill.min_confidence; with distill.balance, at most the
         median class's count per class (the teacher's top-1 on the first head), the most confident first, so the
         common species do not drown the rare ones; at most distill.max_unlabeled clips
"""

from __future__ import annotations

import numpy as np

from mmbehave.domain.heads import HeadSpec


def kept_clips(probabilities: dict[str, np.ndarray], heads: tuple[HeadSpec, ...], min_confidence: float,
               balance: bool, max_clips: int | None) -> np.ndarray:
    """Indices of the pool clips to train on, most confident first (see the module docstring)."""
    single = [head for head in heads if not head.multi]
    if not single:
        confidence = np.ones(len(next(iter(probabilities.values()))))
    else:
        confidence = np.min([probabilities[head.name].max(axis=1) for head in single], axis=0)
    order = np.argsort(-confidence, kind="stable")
    order = order[confidence[order] >= min_confidence]
    if balance and single and len(order):
        top = probabilities[single[0].name].argmax(axis=1)[order]
        counts = np.bincount(top)
        cap = int(np.median(counts[counts > 0]))
        taken: dict[int, int] = {}
        keep = []
        for index, label in zip(order, top):
            if taken.get(int(label), 0) < cap:
                taken[int(label)] = taken.get(int(label), 0) + 1
                keep.append(index)
        order = np.array(keep, dtype=np.int64)
    if max_clips is not None:
        order = order[:max_clips]
    return np.sort(order)
