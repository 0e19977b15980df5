"""The one way mmbehave turns config into objects.

Hydra 1.4 refuses, or will refuse, config-selected ``_target_``s that trusted code has not allowed. The
allowed targets are mmbehave's own classes and torch's optimizers; a project that adds its own encoder
module lists it in ``$MMBEHAVE_TRUSTED_TARGETS`` (comma-separated, ``mypkg.*`` allows a package). The model
components a user allows checkpoints to rebuild (``$MMBEHAVE_MODEL_COMPONENTS``, ``models.components``) are
trusted too: naming a class there is enough to build it.
"""

from __future__ import annotations

import os
from typing import Any

TRUSTED_TARGETS = ("mmbehave.*", "torch.optim.*")
TRUSTED_ENV_VARS = ("MMBEHAVE_TRUSTED_TARGETS", "MMBEHAVE_MODEL_COMPONENTS")
_allowed_in_process: set[str] = set()


def listed_in_environment(name: str) -> list[str]:
    """The comma-separated dotted names in environment variable ``name``."""
    return [t.strip() for t in os.environ.get(name, "").split(",") if t.strip()]


def allow_target(target: str) -> None:
    """Trust ``target`` for the rest of this process (``models.components.register_model_component``)."""
    _allowed_in_process.add(target)


def trusted_targets() -> tuple[str, ...]:
    extra = [target for name in TRUSTED_ENV_VARS for target in listed_in_environment(name)]
    return (*TRUSTED_TARGETS, *extra, *sorted(_allowed_in_process))


def build(config: Any, *args: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with mmbehave's execution whitelist."""
    from hydra.utils import instantiate

    return instantiate(config, *args, _execution_whitelist_=list(trusted_targets()), **kwargs)
