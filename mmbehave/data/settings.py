"""The ``data`` config as the data layer reads it: typed once, checked once.

    data config ─► DataSettings(root, group_by, preprocess: PreprocessSettings, augment: Augmentation,
                                generated: whether data.prepare makes the dataset)

``data.prepare`` itself is a ``_target_`` node: the run builds it from the config (``prepared.make_dataset_files``);
nothing here calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from omegaconf import OmegaConf

from mmbehave.core.errors import ConfigError
from mmbehave.core.settings import typed_view
from mmbehave.data.clip_inputs import PreprocessSettings
from mmbehave.data.dataset import Augmentation
from mmbehave.data.splits.label_subset import LabelShare

GroupColumn = tuple[str, ...] | None   # None: the usual group columns where present; (): none on purpose


@dataclass(frozen=True)
class DataSettings:
    root: Path
    preprocess: PreprocessSettings   # how clips become model inputs (must match the files' manifest)
    group_by: GroupColumn = None
    augment: Augmentation = Augmentation()  # training-time only
    generated: bool = False          # data.prepare makes the dataset (the built-in benchmarks)
    labels_dir: Path | None = None   # train/val/test.csv elsewhere than <root>/raw/metadata (a fold)
    label_share: LabelShare = LabelShare()  # data.label_fraction / labels_per_class: a share of the training labels

    @classmethod
    def from_config(cls, data_cfg: Mapping[str, Any]) -> DataSettings:
        """ConfigError (one line, naming the key) for a value that cannot work."""
        container = OmegaConf.to_container(data_cfg, resolve=True) if OmegaConf.is_config(data_cfg) else dict(data_cfg)
        if "group_column" in container:  # the spelling before 2026-12, in a user's own conf/data/<name>.yaml
            raise ConfigError("data.group_column is now data.group_by (one spelling across the commands): rename "
                              "the key in your data config.")
        if not container.get("root"):
            raise ConfigError("data.root is missing: the dataset folder (raw/ and processed/ under it).")
        try:
            preprocess = PreprocessSettings.from_config(container)
        except ConfigError:
            raise
        except ValueError as error:  # a value of the right type that cannot work (a negative size)
            raise ConfigError(f"data: {error}.") from error
        augmentation = typed_view(Augmentation, container.get("augment") or {}, "data.augment", defaults=True)
        labels = container.get("labels_dir")
        return cls(Path(str(container["root"])).expanduser(), preprocess, group_by_columns(container.get("group_by")),
                   augmentation, bool(container.get("prepare")), Path(str(labels)).expanduser() if labels else None,
                   LabelShare.from_config(container))


def group_by_columns(value: Any) -> GroupColumn:
    """``data.group_by``: null, one column, or a list of them ([] checks none)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(column, str) for column in value):
        return tuple(value)
    raise ConfigError(f"data.group_by={value!r}: give a column name, a list of them, or null.")
