"""The classification heads a model has, from ``model.heads``: which label column each reads and how.

    model:
      heads:
        species:  {column: species,  type: single, loss_weight: 1.0}
        activity: {column: activity, type: single, loss_weight: 1.0}
        action:   {column: action,   type: multi,  loss_weight: 1.0, separator: "|"}

``single``: one label per clip (softmax, cross-entropy); ``multi``: any number of labels per clip, written in
one cell joined by ``separator`` (``walking|vocalizing``; sigmoid, binary cross-entropy). A head's targets are
class indices (single) or 0/1 rows (multi). The default preset (``model/heads=guide``) is the original guide's
pair, species and behavior; every config and checkpoint names its heads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmbehave.core.errors import ConfigError

SINGLE, MULTI = "single", "multi"
EXAMPLE = "model.heads.<name>={column: <label column>, type: single|multi, loss_weight: 1.0}"


@dataclass(frozen=True)
class HeadSpec:
    name: str
    column: str
    type: str = SINGLE
    loss_weight: float = 1.0
    separator: str = "|"

    @property
    def multi(self) -> bool:
        return self.type == MULTI

    def cell_labels(self, cell: str) -> list[str]:
        """The labels of one table cell: itself for a single head; split, stripped, blanks and repeats dropped
        for a multi head (``"walking| vocalizing|"`` -> walking, vocalizing)."""
        if not self.multi:
            return [cell.strip()]
        labels = [label.strip() for label in cell.split(self.separator)]
        return list(dict.fromkeys(label for label in labels if label))

    def labels_text(self, names: Iterable[str], chosen: Iterable[bool]) -> str:
        """The chosen names as a label table writes them: joined by the separator (``walking|vocalizing``)."""
        return self.separator.join(name for name, on in zip(names, chosen) if on)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head_specs(heads: Mapping[str, Any] | None) -> tuple[HeadSpec, ...]:
    """``model.heads`` checked and in order."""
    if heads is None:
        raise ConfigError(f"model.heads is missing: a model needs its heads ({EXAMPLE}, or a preset: model/heads=guide).")
    if not isinstance(heads, Mapping) or not heads:
        raise ConfigError(f"model.heads must map head names to their settings ({EXAMPLE}); got {heads!r}.")
    specs = []
    for name, settings in heads.items():
        key = f"model.heads.{name}"
        if settings is None:  # model.heads.behavior=null removes a head
            continue
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{key} must be a mapping ({EXAMPLE}); got {settings!r}.")
        unknown = sorted(set(settings) - {"column", "type", "loss_weight", "separator"})
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown setting; a head has column, type, loss_weight, separator.")
        head_type = str(settings.get("type", SINGLE))
        if head_type not in (SINGLE, MULTI):
            raise ConfigError(f"{key}.type={head_type}: a head is 'single' (one label per clip, softmax) or "
                              f"'multi' (several labels per cell, sigmoid).")
        weight = float(settings.get("loss_weight", 1.0))
        if not weight >= 0:
            raise ConfigError(f"{key}.loss_weight={weight} must be >= 0 (0 trains the head's classifier not at all).")
        separator = str(settings.get("separator", "|"))
        if head_type == MULTI and not separator:
            raise ConfigError(f"{key}.separator is empty; a multi head needs one to split its cells (e.g. '|').")
        specs.append(HeadSpec(str(name), str(settings.get("column", name)), head_type, weight, separator))
    if not specs:
        raise ConfigError(f"model.heads lists no head; a model needs at least one ({EXAMPLE}).")
    return tuple(specs)


def heads_from_config(config: Any) -> tuple[HeadSpec, ...]:
    """The heads of a (training or checkpoint) config: ``config.model.heads``."""
    from omegaconf import OmegaConf

    model = config.get("model") if config is not None else None
    heads = model.get("heads") if model is not None else None
    if heads is not None and OmegaConf.is_config(heads):
        heads = OmegaConf.to_container(heads, resolve=True)
    return head_specs(heads)


def label_columns(heads: Iterable[HeadSpec]) -> list[str]:
    return list(dict.fromkeys(head.column for head in heads))


def encode_targets(head: HeadSpec, cells: Iterable[str], classes: list[str]) -> np.ndarray:
    """(N,) int64 class indices (single) or (N, C) float32 0/1 rows (multi) for the cells of one column."""
    index = {name: i for i, name in enumerate(classes)}
    cells = list(cells)
    if not head.multi:
        return np.array([index[cell.strip()] for cell in cells], dtype=np.int64)
    rows = np.zeros((len(cells), len(classes)), dtype=np.float32)
    for row, cell in enumerate(cells):
        for label in head.cell_labels(cell):
            rows[row, index[label]] = 1.0
    return rows


def class_counts(head: HeadSpec, targets: np.ndarray, num_classes: int) -> list[int]:
    """Clips per class: a multi-label clip counts for each of its labels."""
    if head.multi:
        return np.asarray(targets).sum(axis=0).astype(np.int64).tolist()
    return np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).tolist()
