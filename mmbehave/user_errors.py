"""User mistakes (a bad config value, bad data, a missing checkpoint or weights) end a command with one
line and exit status 2, not a traceback: they are not bugs, and the message already says the fix."""

from __future__ import annotations

import logging
import sys
from typing import Callable, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

T = TypeVar("T")
log = logging.getLogger("mmbehave")


def user_error_types() -> tuple[type[Exception], ...]:
    # Imported here so that `--help` answers before torch and mlflow load.
    from mmbehave.config_checks import ConfigError
    from mmbehave.data.metadata import DataError
    from mmbehave.models.pretrained import PretrainedWeightsError
    from mmbehave.trained_model import CheckpointError

    return ConfigError, DataError, PretrainedWeightsError, CheckpointError


def exit_on_user_error(run: Callable[[], T], extra: tuple[type[Exception], ...] = ()) -> T:
    """``run()``; on a user mistake print ``error: <message>`` and exit 2. In a multirun the error propagates
    instead, so that the sweeper records the job as failed and goes on with the others."""
    try:
        return run()
    except (*user_error_types(), *extra) as error:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
