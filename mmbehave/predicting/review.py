"""A review queue: every clip ordered least certain first, so that a person checks the doubtful ones first.

    <stem>_review.csv   rank, path, clip_id, head, label, prob, margin (top probability minus the second),
                        entropy (of the head's distribution, in bits), <head>_top<k>

Ordered by margin (smallest first), then entropy (largest first): a clip the model finds almost a tie between
two classes comes before one it spreads thinly over many. The head reviewed is ``review_head=`` (default: the
model's first single-label head, usually species).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmbehave.core.errors import ConfigError
from mmbehave.predicting.answers import DECIMALS, top_k_text


def review_head(trained, wanted: str | None) -> str:
    """The head to review: ``wanted`` if the model has it (single-label), else its first single-label head."""
    single = [head.name for head in trained.heads if not head.multi]
    if wanted:
        if wanted not in single:
            raise ConfigError(f"review_head={wanted}: review a single-label head of the model ({', '.join(single)}).")
        return wanted
    if not single:
        raise ConfigError("review=true needs a single-label head; this model has only multi-label ones.")
    return single[0]


def certainty(probs: np.ndarray) -> tuple[float, float]:
    """(margin between the two highest probabilities, entropy in bits)."""
    ordered = np.sort(probs)[::-1]
    margin = float(ordered[0] - (ordered[1] if len(ordered) > 1 else 0.0))
    p = probs[probs > 0]
    return margin, float(-(p * np.log2(p)).sum())


def review_rows(clip_probs: dict[Path, dict[str, np.ndarray]], names: dict[str, list[str]], head: str,
                top_k: int) -> list[dict]:
    rows = []
    for path, probs in clip_probs.items():
        scores = probs[head]
        best = int(scores.argmax())
        margin, entropy = certainty(scores)
        rows.append({"path": str(path), "clip_id": path.stem, "head": head, "label": names[head][best],
                     "prob": round(float(scores[best]), DECIMALS), "margin": round(margin, DECIMALS),
                     "entropy": round(entropy, DECIMALS), f"{head}_top{top_k}": top_k_text(names[head], scores, top_k)})
    rows.sort(key=lambda row: (row["margin"], -row["entropy"], row["path"]))
    return [{"rank": rank, **row} for rank, row in enumerate(rows, 1)]
