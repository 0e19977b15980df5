"""A training job that a cluster scheduler stopped and started again carries on from its last epoch.

SLURM pre-empts jobs and ends them at their time limit; with ``hydra/launcher=slurm`` (hydra-submitit-launcher)
submitit catches the warning signal (USR2), requeues the job with the same overrides and the same job folder,
and the job starts from the top. Here it finds its own ``checkpoints/latest.pth`` and resumes, as ``resume=``
would: same MLflow run, same Optuna trial, the epochs already done are not trained again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Set in every job submitit starts: SLURM jobs, and the local executor's (hydra/launcher=submitit_local).
SUBMITIT_JOB_VARIABLES = ("SUBMITIT_EXECUTOR", "SUBMITIT_LOCAL_JOB_ID")


def in_submitit_job() -> bool:
    return any(os.environ.get(name) for name in SUBMITIT_JOB_VARIABLES)


def requeued_checkpoint(output_dir: Path) -> Path | None:
    """This job folder's ``latest.pth`` when this is a submitit job that already ran in it (a requeue), else None.

    A sweep's job folders are new for every sweep (``hydra.sweep.dir`` carries the time), so a checkpoint there
    can only come from an earlier start of the same job; the usual resume checks still refuse a config that
    differs from the checkpoint's."""
    if not in_submitit_job():
        return None
    latest = output_dir / "checkpoints" / "latest.pth"
    if not latest.is_file():
        return None
    log.info("Requeued job: resuming from %s", latest)
    return latest
