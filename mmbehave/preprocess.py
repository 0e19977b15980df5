"""Command line: turn a dataset's raw clips into model inputs.

    python -m mmbehave.preprocess data.root=<dir>                         # settings from conf/data/processed.yaml
    python -m mmbehave.preprocess data.root=<dir> data.num_frames=8 preprocess.num_workers=8

Reads ``<dir>/raw``, writes ``<dir>/processed`` (see ``mmbehave/data/layout.py``) and prints a summary.
Exit status: 0 done; 1 some clips failed (with ``preprocess.fail_on_error=true``, the default; the others
are still processed); 2 bad metadata, nothing done. The synthetic generator calls ``preprocess_from_config``, so
generated and real data take the same path.
"""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from mmbehave.core.cli import command

log = logging.getLogger(__name__)


@command("preprocess")
def main(cfg: DictConfig) -> None:
    # Imported here so that `--help` answers before torch loads.
    from mmbehave.data.preprocessing import preprocess_from_config

    summary = preprocess_from_config(cfg.data, num_workers=cfg.preprocess.num_workers, progress=cfg.preprocess.progress)
    print(summary.format())
    if summary.failed and cfg.preprocess.fail_on_error:
        log.error("%d clip(s) failed; fix or remove them, or set preprocess.fail_on_error=false.", len(summary.failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
