"""Command line: turn a dataset's raw clips into model inputs.

    python -m mmbehave.preprocess data.root=<dir>                         # settings from conf/data/processed.yaml
    python -m mmbehave.preprocess data.root=<dir> data.num_frames=8 preprocess.num_workers=8

Reads ``<dir>/raw``, writes ``<dir>/processed`` (see ``mmbehave/data/layout.py``) and prints a summary.
Exit status: 0 done; 1 some clips failed (with ``preprocess.fail_on_error=true``, the default; the others
are still processed); 2 bad metadata, nothing done. The synthetic generator calls ``run_preprocess``, so
generated and real data take the same path.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Mapping

from omegaconf import DictConfig

from mmbehave.data.layout import SPLITS
from mmbehave.instantiate import hydra_app

if TYPE_CHECKING:
    from mmbehave.data.preprocessing import PreprocessSummary

log = logging.getLogger(__name__)


def run_preprocess(data_cfg: Mapping[str, Any], num_workers: int = 2, progress: bool = True,
                   splits: tuple[str, ...] = SPLITS) -> PreprocessSummary:
    """Preprocess the dataset at ``data_cfg.root`` with the settings in ``data_cfg`` (the ``data`` config group)."""
    # Imported here so that `--help` and config errors answer before torch loads.
    from mmbehave.data.preprocessing import PreprocessSettings, preprocess_dataset

    settings = PreprocessSettings.from_config(data_cfg)
    return preprocess_dataset(data_cfg["root"], settings, num_workers=num_workers, progress=progress, splits=splits)


@hydra_app("preprocess")
def main(cfg: DictConfig) -> None:
    from mmbehave.data.metadata import DataError

    try:
        summary = run_preprocess(cfg.data, num_workers=cfg.preprocess.num_workers, progress=cfg.preprocess.progress)
    except DataError as error:
        log.error("%s", error)
        sys.exit(2)
    print(summary.format())
    if summary.failed and cfg.preprocess.fail_on_error:
        log.error("%d clip(s) failed; fix or remove them, or set preprocess.fail_on_error=false.", len(summary.failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
