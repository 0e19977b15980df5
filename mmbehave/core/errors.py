"""Mistakes a user can make and fix: a bad config value, bad data, an unusable checkpoint, missing weights.

Every such mistake is a ``UserError``. Commands (``mmbehave.core.cli.command``) end on one with one line on
stderr and exit status 2, not a traceback: it is not a bug, and the message already names the key, file or
row at fault and says the fix. The kinds below keep the built-in base their callers have always caught
(``ValueError`` / ``RuntimeError``), so ``except ValueError`` around a data check still works.
"""

from __future__ import annotations

import os
from pathlib import Path


class UserError(Exception):
    """A mistake in what the user gave (config, data, files). The message is one line and says the fix."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work. The message names the key and a fix."""


class DataError(UserError, ValueError):
    """Bad input data. The message names the file (and row) and says how to fix it."""


class ClipReadError(DataError):
    """A clip could not be decoded. ``path`` is the file, ``reason`` says what went wrong."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # crosses process pools: rebuild from (path, reason), not from the message
        return type(self), (self.path, self.reason)


class CheckpointError(UserError, ValueError):
    """A checkpoint file or MLflow run that cannot be used. The message names it and says what to do."""


class StorageError(UserError, OSError):
    """A file could not be written (the disk is full, the folder is read-only). Names the path."""


class PretrainedWeightsError(UserError, RuntimeError):
    """Pretrained weights could not be found locally nor fetched; the message says why."""


class InputError(UserError, ValueError):
    """A command's input (``input=`` of predict, a package to import) names nothing usable."""


class ReportError(UserError, ValueError):
    """Nothing to report: no such experiment, sweep or param. The message says what exists."""


class TrackingError(UserError, RuntimeError):
    """The MLflow tracking store cannot be reached. The message names it (password hidden) and says what to do."""
