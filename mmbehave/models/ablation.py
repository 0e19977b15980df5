"""Modality ablation: what `video_encoder=none` / `audio_encoder=none` instantiate.

    conf/<group>/none.yaml ──instantiate──► absent_modality() ──► None
                                                                   │
    MultiModalClassifier(video_encoder=None, ...) ◄────────────────┘  builds no branch for that modality

Ablating one modality at a time is how the multimodal gain is measured (as in Nagrani et al.,
"Attention Bottlenecks for Multimodal Fusion", NeurIPS 2021, Table 1).
"""

from __future__ import annotations


def absent_modality(**_: object) -> None:
    """Return None: the classifier reads a None encoder as "this modality is not used".

    Accepts and ignores any keyword: a preset or command line that tunes the real encoder (e.g.
    `video_encoder.hidden_size=64` in an experiment file) merges those keys into this group too, and must
    not break an ablated run.
    """
    return None
